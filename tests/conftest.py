"""Shared fixtures: the registry, tiny study files, the installed example plugin.

Markers (registered in pyproject.toml): ``slow``, ``e2e`` (runs the real console
script), ``postgres`` (any test using the ``postgres_url`` fixture gets it) and
``browser`` (headless Chromium). Without a reachable PostgreSQL or an installed
Chromium, ``postgres`` and ``browser`` tests are skipped with the reason; with
``FEDSEARCH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from fedsearch import ComponentRegistry, get_registry

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """The project's shared datasets: ``$FEDSEARCH_SHARED_DATA``, else ``../shared/data``
    beside the checkout, else this machine's ``/work/shared/data`` (a CI clone lives elsewhere)."""
    candidates = [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    if "FEDSEARCH_SHARED_DATA" in os.environ:
        candidates.insert(0, Path(os.environ["FEDSEARCH_SHARED_DATA"]))
    return next((path for path in candidates if path.is_dir()), candidates[0])


SHARED_DATA = _shared_data()
EXAMPLE_PLUGIN = REPO / "plugins" / "fedsearch-example-plugin"

TINY_SPACE = """
[slots]
architecture = ["mlp"]
prune = ["none", "magnitude"]
quantize = ["none", "uniform"]
distill = ["none", "soft_target"]

[dimensions]
"architecture.mlp.depth" = { value = 1 }
"architecture.mlp.widths" = { choices = [16, 32] }
"quantize.uniform.bits" = { choices = [4, 8] }
"""

TINY_STUDY = """
name = "tiny"
seed = 0
output_dir = "{output}"

[dataset]
name = "digits"
val_fraction = 0.2

[federation]
num_clients = 4
rounds = 3
fraction = 0.5
local_epochs = 1
batch_size = 32
learning_rate = 0.3

[teacher]
architecture = {{ name = "mlp", params = {{ widths = [32] }} }}
rounds = 3

[search]
space = "space.toml"
n_trials = 3
sampler = {{ name = "random" }}
"""


REQUIRE_SERVICES_ENV = "FEDSEARCH_REQUIRE_SERVICES"
POSTGRES_ENV = "FEDSEARCH_TEST_POSTGRES"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_server() -> sqlalchemy.URL:
    return sqlalchemy.make_url(os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT))


@functools.cache
def _postgres_missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when the server answers."""
    server = _postgres_server()
    engine = sqlalchemy.create_engine(server, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            return None
    except sqlalchemy.exc.SQLAlchemyError as error:
        shown = server.render_as_string(hide_password=True)
        return (
            f"PostgreSQL is not reachable at {shown} ({type(error).__name__}); start it or "
            f"point {POSTGRES_ENV} at one"
        )
    finally:
        engine.dispose()


@functools.cache
def _browser_missing() -> str | None:
    """Why browser tests cannot run here, or None when Chromium is installed."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return "Chromium is not installed (apt-get install -y chromium chromium-driver)"


_SERVICE_PROBES = {"postgres": _postgres_missing, "browser": _browser_missing}

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags of every headless Chromium the tests start (no network beyond the local server)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL database ``postgres``."""
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, under ``FEDSEARCH_REQUIRE_SERVICES=1``, fail) tests whose service is missing."""
    for marker, missing in _SERVICE_PROBES.items():
        if item.get_closest_marker(marker) and (reason := missing()):
            if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
                pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1 requires it)", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(scope="session")
def registry() -> ComponentRegistry:
    """Components of the installed plugins."""
    return get_registry()


def write_tiny_study(folder: Path, study: str = TINY_STUDY, space: str = TINY_SPACE) -> Path:
    """Write a tiny study (digits, 4 clients, 3 rounds) and its search space into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.toml").write_text(space)
    path = folder / "study.toml"
    path.write_text(study.format(output=(folder / "runs").as_posix()))
    return path


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """Path of a valid tiny study file whose outputs go under ``tmp_path/runs``."""
    return write_tiny_study(tmp_path)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Selenium through the system chromedriver."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [*CHROMIUM_FLAGS, "--headless=new", "--window-size=1400,2400"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example third-party plugin, really installed (wheel built) into its own folder.

    Put the folder on ``PYTHONPATH`` (or ``sys.path``) to make the plugin visible.
    """
    target = tmp_path_factory.mktemp("example-plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE_PLUGIN),
        ],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database, dropped at the end of the session.

    The server comes from ``FEDSEARCH_TEST_POSTGRES`` (default: the local
    ``test`` database); CI starts it before the tests.
    """
    server = _postgres_server()
    name = f"fedsearch_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {server.render_as_string(hide_password=True)} "
            f"({error.orig}); start it or point {POSTGRES_ENV} at one"
        )
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, timeout: float = 60) -> Any:
    """GET ``url`` as JSON, retrying while the server starts (up to ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
