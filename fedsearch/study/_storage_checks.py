"""Checks of storage URLs, folders and output files that create nothing.

A study that fails one of these leaves nothing behind (no database file, no
study, no folder), and the message says what to fix. Read-only commands use
``check_storage(url, create=False)``: a storage that does not exist yet is
an error, never created.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy
from sqlalchemy.pool import NullPool

from fedsearch._errors import ConfigError

STORAGE_EXAMPLES = "sqlite:///runs/fedsearch.db or postgresql+psycopg://user@host/database"
CONNECT_TIMEOUT_S = 10
OPTUNA_TABLE = "studies"
"""A table every Optuna RDB storage has."""


def parse_storage_url(url: str, *, field: str, source: str | None = None) -> sqlalchemy.URL:
    """Parse ``url`` and load its database driver (no connection yet).

    Raises:
        ConfigError: Malformed URL, unknown dialect or driver, or a driver that
            is not installed.
    """
    try:
        parsed = sqlalchemy.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(
            f"malformed storage URL {url!r}; use a URL like {STORAGE_EXAMPLES}",
            source=source,
            field=field,
        ) from None
    try:
        parsed.get_dialect().import_dbapi()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(
            f"unknown database driver {parsed.drivername!r} in storage URL {_shown(parsed)}; "
            f"use a URL like {STORAGE_EXAMPLES}",
            source=source,
            field=field,
        ) from None
    except ImportError as error:
        raise ConfigError(
            f"the driver of {parsed.drivername!r} is not installed ({error}); install it "
            "(for postgresql+psycopg://: pip install 'fedsearch[postgres]')",
            source=source,
            field=field,
        ) from None
    return parsed


def check_storage(url: str, *, create: bool, field: str, source: str | None = None) -> None:
    """Check that the storage can be used, without creating anything.

    Args:
        url: The storage URL.
        create: Whether the caller will create the database (``fedsearch run``):
            a SQLite file may then be missing if its folder can be created.
            Otherwise the storage must already hold Optuna's tables.
        field: Where the URL came from (``--storage``, ``storage``, ``output_dir``).
        source: The study file it came from, if any.

    Raises:
        ConfigError: The URL is invalid, the server unreachable, the SQLite
            file missing (read-only use), a folder, unwritable, or its folder
            cannot be created.
    """
    parsed = parse_storage_url(url, field=field, source=source)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database)
        if database.is_dir():
            raise ConfigError(
                f"the SQLite database {database} is a folder; name a file",
                source=source,
                field=field,
            )
        if not database.exists():
            if not create:
                raise ConfigError(
                    f"no database at {database}; check the path (fedsearch run creates it)",
                    source=source,
                    field=field,
                )
            check_writable_folder(database.parent, field=field, source=source)
            return
        if create and not os.access(database, os.R_OK | os.W_OK):
            raise ConfigError(
                f"the SQLite database {database} is not writable; fix its permissions",
                source=source,
                field=field,
            )
    _check_connection(url, parsed, create=create, field=field, source=source)


def _check_connection(
    url: str, parsed: sqlalchemy.URL, *, create: bool, field: str, source: str | None
) -> None:
    connect_args = {}
    if parsed.get_driver_name() in ("psycopg", "psycopg2"):  # libpq's option
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with storage_errors(url, field=field, source=source), engine.connect() as connection:
            has_tables = sqlalchemy.inspect(connection).has_table(OPTUNA_TABLE)
    finally:
        engine.dispose()
    if not create and not has_tables:
        raise ConfigError(
            f"{_shown(parsed)} holds no studies; check the URL (fedsearch run creates them)",
            source=source,
            field=field,
        )


@contextmanager
def storage_errors(url: str, *, field: str, source: str | None = None) -> Iterator[None]:
    """Turn database errors (unreachable server, not a database, no permission) into
    one-line ``ConfigError``s that name the storage."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(
            f"cannot use the storage {_shown(sqlalchemy.make_url(url))} ({reason}); start the "
            "database server, or fix the URL or the file's permissions",
            source=source,
            field=field,
        ) from None


def check_writable_folder(folder: str | Path, *, field: str, source: str | None = None) -> None:
    """Check that ``folder`` is, or can be created as, a writable folder; create nothing.

    The nearest existing ancestor must be a folder in which a scratch folder
    can really be created (and it is removed at once): this catches read-only
    file systems and permissions that ``os.access`` misses.

    Raises:
        ConfigError: A file is in the way, or nothing can be written there.
    """
    folder = Path(folder)
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        where = "" if existing == folder else f" (in the way of {folder})"
        raise ConfigError(
            f"{existing} is a file, not a folder{where}; pick another path",
            source=source,
            field=field,
        )
    where = "" if existing == folder else f", so {folder} cannot be created"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fedsearch-probe-", dir=existing))
    except OSError as error:
        raise ConfigError(
            f"cannot write in {existing} ({error.strerror}){where}; pick a writable folder",
            source=source,
            field=field,
        ) from None


def check_output_file(path: str | Path, *, field: str) -> None:
    """Check that a file can be written at ``path`` (a folder must not be in its place).

    Raises:
        ConfigError: ``path`` is a folder, or its folder cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; name a file to write", field=field)
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{target} is not writable; fix its permissions", field=field)
    check_writable_folder(target.parent, field=field)


def _shown(url: sqlalchemy.URL) -> str:
    return url.render_as_string(hide_password=True)
