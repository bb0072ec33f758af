"""The README and the docs are an executable specification: their snippets and commands run.

Every ```toml block of the README and of ``docs/*.md`` must be claimed by one
of the runs below (an unclaimed block fails ``test_every_toml_snippet_is_run``),
and every ``fedsearch`` command they show runs through the real console script:
the commands that need a particular setting run in the jobs below, every other
command of a docs page runs, in order, in a scratch copy of ``studies/`` and
``search_spaces/`` (``doc_page_jobs``). Budgets (rounds, trials) are the only
thing changed, so the whole file stays fast; the runs go two at a time. The
compressor table is checked against the installed plugins, and each built-in
compressor runs on each built-in student family.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from PIL import Image

from fedsearch.host import get_registry
from tests._console import fedsearch
from tests._docs import (
    DOC_FILES,
    README,
    Block,
    Command,
    doc_blocks,
    doc_commands,
    load_hooks,
    snippet,
    text_block,
)
from tests._studies import DROP, merged, tiny_space, tiny_study, write_study, write_toml
from tests.conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.e2e

DOCS_TEXT = "\n".join(path.read_text() for path in DOC_FILES)
BUDGET = {"federation": {"rounds": 1}, "teacher": {"rounds": 1}, "search": {"n_trials": 1}}
WIDE = {"COLUMNS": "250"}  # rich tables unwrapped


def unboxed(line: str) -> list[str]:
    """The words of a line of a rich table, without its box-drawing characters."""
    return re.sub(r"[\u2500-\u257f]", " ", line).split()


def space_snippet(slot: str) -> Block:
    return snippet(
        lambda doc: (
            "slots" in doc
            and slot in doc["slots"]
            and "search" not in doc
            and "factory" not in doc["slots"].get("architecture", [])
        )  # own_model_job's
    )


def python_snippet(marker: str) -> Block:
    """The first python block of the README and docs that contains ``marker``."""
    return text_block(marker, "python")


@dataclass
class Job:
    """Commands run in order in one folder; the results are kept by name."""

    folder: Path
    commands: list[tuple[str, list[str]]]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # default: the folder
    claims: list[str] = field(default_factory=list)  # "path:line" of the toml blocks it runs
    keep_going: bool = False  # run every command even after one fails
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def run(self) -> None:
        for name, args in self.commands:
            result = fedsearch(*args, cwd=self.cwd or self.folder, env={**WIDE, **self.env})
            self.results[name] = result
            if result.returncode != 0 and not self.keep_going:
                return

    def ok(self, name: str) -> subprocess.CompletedProcess[str]:
        result = self.results.get(name)
        assert result is not None, f"{name} did not run: {self.results}"
        assert result.returncode == 0, f"fedsearch {name}: {result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
        return result

    def trials(self, study_name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
        storage = f"sqlite:///{self.folder / 'runs' / 'fedsearch.db'}"
        return optuna.load_study(study_name=study_name, storage=storage).get_trials()


def quickstart_job(root: Path) -> Job:
    """The README's study file (it is studies/quickstart.toml) and every command it shows."""
    study = snippet(lambda doc: doc.get("name") == "quickstart")
    assert study.toml == tomllib.loads((REPO / "studies" / "quickstart.toml").read_text())
    folder = root / "quickstart"
    shutil.copytree(REPO / "search_spaces", folder / "search_spaces")
    budget = merged(BUDGET, {"search": {"n_trials": 4}})  # the README exports trial 3
    write_toml(folder / "studies" / "quickstart.toml", merged(study.toml, budget))
    commands = [(command.args[0], command.args) for command in doc_commands()]
    runs = [c for c in commands if c[1] == ["run", "studies/quickstart.toml"]]
    exports = [
        c
        for c in commands
        if c[0] == "export"
        and " --study-name quickstart " in f" {' '.join(c[1])} "
        and not any(w.isupper() for w in c[1])
    ]
    assert runs and exports, "the README shows the quickstart run and an export"
    stored = ["--storage", "sqlite:///runs/fedsearch.db", "--study-name", "quickstart"]
    return Job(
        folder,
        [
            ("run", runs[0][1]),
            *((f"export onnx {index}", command[1]) for index, command in enumerate(exports)),
            ("validate", ["validate", "studies/quickstart.toml", "--json"]),
            ("pareto", ["pareto", *stored, "--json"]),
            ("status", ["status", *stored]),
            ("report", ["report", *stored, "-o", "report"]),
            ("export artifact", ["export", *stored, "--trial", "3", "-o", "model.fsz"]),
            (
                "export torchscript",
                ["export", *stored, "--trial", "3", "--format", "torchscript", "-o", "model.pt"],
            ),
        ],
        claims=[study.where],
    )


def mistake_jobs(root: Path) -> dict[str, Job]:
    """The two mistakes the README shows, made in copies of the quickstart files."""
    jobs = {}
    for name in ("space", "study"):
        folder = root / f"mistake-{name}"
        shutil.copytree(REPO / "search_spaces", folder / "search_spaces")
        shutil.copytree(REPO / "studies", folder / "studies")
        if name == "space":
            path = folder / "search_spaces" / "default.toml"
            change = {"dimensions": {"quantize.uniform.bits": {"choices": [0, 4]}}}
        else:
            path = folder / "studies" / "quickstart.toml"
            change = {"federation": {"rounds": DROP, "roundz": 20}}
        write_toml(path, merged(tomllib.loads(path.read_text()), change))
        jobs[f"mistake-{name}"] = Job(
            folder, [("validate", ["validate", "studies/quickstart.toml"])], keep_going=True
        )
    jobs["mistake-study"].commands += [
        ("status", ["status", "--storage", "sqlite:///runs/fedsearch.bd", "--study-name", "q"]),
        ("timeout", ["run", "studies/quickstart.toml", "--timeout", "nan"]),
    ]
    return jobs


def study_job(
    root: Path,
    name: str,
    blocks: list[Block],
    *,
    validate: bool = False,
    private: bool = False,
    **changes: Any,
) -> Job:
    """A tiny study with the README's study fragments (and space fragments) merged in.

    ``private``: without the teacher and distillation, which a DP study refuses.
    """
    study, space = tiny_study(**merged(BUDGET, changes)), tiny_space()
    if private:
        study.pop("teacher")
        space = tiny_space(slots={"distill": ["none"]})
    for block in blocks:
        if "search" in block.toml or "slots" not in block.toml:
            study = merged(study, block.toml)
        elif "architecture" in block.toml["slots"]:
            space = block.toml  # a whole search space
        else:  # slots and dimensions that replace the tiny space's
            space = {part: space[part] | block.toml.get(part, {}) for part in space}
    folder = root / name
    path = write_study(folder, study, space)
    commands = [("validate", ["validate", str(path)])] if validate else []
    commands.append(("run", ["run", str(path)]))
    return Job(folder, commands, claims=[block.where for block in blocks])


def own_model_job(root: Path) -> Job:
    """Bring your own model and data: my_models.py, the npz files, the study, the export."""
    folder = root / "own-model"
    folder.mkdir()
    (folder / "my_models.py").write_text(python_snippet("# my_models.py").text)
    data = python_snippet("np.savez(").text
    subprocess.run([sys.executable, "-c", data], cwd=folder, check=True, capture_output=True)
    study = snippet(lambda doc: doc.get("name") == "own-model")
    space = snippet(lambda doc: "factory" in doc.get("slots", {}).get("architecture", []))
    write_toml(folder / "study.toml", merged(study.toml, BUDGET))
    write_toml(folder / "space.toml", space.toml)
    (export,) = [command for command in doc_commands() if "--study-file" in command.text]
    commands = [("run", ["run", "study.toml"]), ("export", export.args)]
    return Job(folder, commands, claims=[study.where, space.where])


def image_folder_job(root: Path) -> Job:
    """The README's image_folder dataset, on small RGB images of two classes."""
    block = snippet(lambda doc: doc.get("dataset", {}).get("name") == "image_folder")
    job = study_job(root, "image-folder", [block])
    params = block.toml["dataset"]["params"]
    colours = {"red": (200, 30, 30), "blue": (30, 30, 200)}
    for split, count in ((params["root"], 12), (params["test_root"], 4)):
        for name, colour in colours.items():
            (job.folder / split / name).mkdir(parents=True)
            for index in range(count):
                size = (20 + index, 24)  # resized to params["size"]
                Image.new("RGB", size, colour).save(job.folder / split / name / f"{index}.png")
    return job


def transfer_job(root: Path) -> Job:
    """The transfer snippet: a 5-class model given by file, onto the 10 digits, frozen searched."""
    block = snippet(lambda doc: "pretrained" in doc.get("teacher", {}))
    study = merged(tiny_study(**merged(BUDGET, {"search": {"n_trials": 3}})), block.toml)
    del study["teacher"]["rounds"]  # a pretrained teacher is not trained
    folder = root / "transfer"
    path = write_study(folder, study)
    job = Job(folder, [("run", ["run", str(path)])], claims=[block.where])
    architecture = block.toml["teacher"]["architecture"]
    model = (
        get_registry()
        .create("architecture", architecture["name"], architecture["params"])
        .build((1, 8, 8), 5)
    )
    torch.save(model.state_dict(), job.folder / block.toml["teacher"]["pretrained"])
    return job


def claimed_elsewhere(command: Command) -> bool:
    """Commands that run in a job of their own (a setting, a service or a file they need)."""
    return (
        command.path == "README.md"  # the quickstart run: quickstart_job
        or "studies/quickstart.toml" in command.text  # quickstart_job's run
        or " --study-name quickstart " in command.text  # quickstart_job's exports
        or command.text.endswith(" --study-name quickstart_dp")  # inspects quickstart_dp:
        # tests/test_quickstart_dp.py runs it on its shrunk study
        or "postgresql" in command.text  # test_many_workers_command_runs_on_postgres
        or "--study-file" in command.text  # own_model_job
        or command.text == "fedsearch plugins"  # with the example plugin installed
        or "--study-name quickstart_tiers" in command.text  # tests/cli/test_tiers.py runs it
        or "studies/pretrained_lenet.toml" in command.text  # needs benchmarks/pretrain.py's file:
        # tests/search/test_pretrained_study.py runs it shrunk
        or LIBRARY_RUN.fullmatch(command.text) is not None  # tests/test_study_library.py
        or any(word.isupper() for word in command.args)  # a placeholder: STUDY.toml, URL
    )


LIBRARY_RUN = re.compile(r"fedsearch run studies/\w+\.toml")
SETUP_RUNS = {"fedsearch run studies/quickstart.toml"}
"""Claimed runs that a page's later commands inspect: rerun first in that page's job."""


def doc_page_jobs(root: Path, plugin_site: Path) -> dict[str, Job]:
    """Each docs page's other commands, in order, in a copy of studies/ and search_spaces/.

    Every study file of the copy gets the test budget, with enough trials for
    the highest ``--trial N`` the page exports; datasets come from the shared
    data folder and the example plugin is installed.
    """
    found = {}
    for path in DOC_FILES[1:]:
        commands = [c for c in doc_commands([path]) if not claimed_elsewhere(c)]
        if not commands:
            continue
        folder = root / f"page-{path.stem}"
        shutil.copytree(REPO / "search_spaces", folder / "search_spaces")
        trials = [int(n) for c in commands for n in re.findall(r"--trial (\d+)", c.text)]
        budget = merged(BUDGET, {"search": {"n_trials": max(trials, default=0) + 1}})
        for study in (REPO / "studies").glob("*.toml"):
            write_toml(
                folder / "studies" / study.name, merged(tomllib.loads(study.read_text()), budget)
            )
        env = {"FEDSEARCH_DATA_DIR": str(SHARED_DATA), "PYTHONPATH": str(plugin_site)}
        steps = [(f"{index}: {c.text}", c.args) for index, c in enumerate(commands)]
        # the page's quickstart run, claimed by quickstart_job, first makes what it inspects
        setup = [c for c in doc_commands([path]) if c.text in SETUP_RUNS]
        steps = [(f"setup: {c.text}", c.args) for c in setup[:1]] + steps
        found[f"page {path.name}"] = Job(folder, steps, env=env)
    return found


COMPRESSOR_ROW = re.compile(r"^\| (factorize|prune|quantize|distill) \| `(\w+)` \|", re.M)
# At most one compressor per stage, so three trials per family run them all.
COMBINATIONS = [
    {
        "factorize": "svd",
        "prune": "magnitude",
        "quantize": "uniform",
        "distill": "soft_target",
    },
    {"prune": "structured", "quantize": "mixed", "distill": "fitnets"},
    {"quantize": "half", "distill": "attention"},  # attention: CNN students and teachers
]
FAMILIES = ["mlp", "cnn", "dscnn"]
SUBSTITUTES = {  # what the compressor table says a family cannot take, and what runs instead
    ("mlp", "attention"): "soft_target",  # attention transfer: "CNN student and teacher"
    ("dscnn", "structured"): "magnitude",  # structured: "not for dscnn"
}
COMMANDS = ["run", "validate", "plugins", "pareto", "status", "report", "export"]


def compressor_job(root: Path, family: str, combination: dict[str, str]) -> Job:
    slots = {"architecture": [family]} | {
        stage: [SUBSTITUTES.get((family, name), name)] for stage, name in combination.items()
    }
    dimensions = {
        "architecture.cnn.channels": {"choices": [4]},
        "architecture.dscnn.depth": {"value": 1},
        "quantize.uniform.scheme": {"value": "asymmetric"},
        "quantize.uniform.granularity": {"value": "channel"},
    }
    teacher = "mlp" if family == "mlp" else "cnn"
    teacher_params = {"widths": [32]} if family == "mlp" else {"depth": 1, "channels": [4]}
    changes: dict[str, Any] = {
        "teacher": {"architecture": {"name": teacher, "params": DROP}},
        "search": {"space": "space.toml"},
    }
    space = tiny_space(slots=slots, dimensions=dimensions)
    folder = root / f"{family}-{'-'.join(combination.values())}"
    study = tiny_study(**merged(BUDGET, changes))
    study["teacher"]["architecture"]["params"] = teacher_params
    path = write_study(folder, study, space)
    return Job(folder, [("run", ["run", str(path)])])


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, example_plugin_site) -> dict[str, Job]:
    root = tmp_path_factory.mktemp("readme")
    plugin_env = {"PYTHONPATH": str(example_plugin_site)}
    federation = snippet(lambda doc: "execution" in doc.get("federation", {}))
    early = federation.toml["federation"]["early_abort"]["after_round"]
    found = {
        "quickstart": quickstart_job(root),
        "plugins": Job(root, [("plugins", ["plugins"])], env=plugin_env),
        "space": study_job(root, "space", [space_snippet("architecture")], validate=True),
        "help": Job(root, [(name, [name, "--help"]) for name in COMMANDS]),
        "limits": study_job(
            root,
            "limits",
            [
                snippet(lambda doc: "constraints" in doc.get("search", {})),
                snippet(lambda doc: "objectives" in doc.get("search", {})),
                snippet(lambda doc: "workers" in doc),
            ],
        ),
        "execution": study_job(root, "execution", [federation], federation={"rounds": early}),
        "middleware": study_job(
            root, "middleware", [snippet(lambda doc: "middleware" in doc.get("federation", {}))]
        ),
        "codecs": study_job(
            root,
            "codecs",
            [
                snippet(lambda doc: "uplink_codec" in doc.get("federation", {})),
                space_snippet("uplink_codec"),
                snippet(lambda doc: "mixed" in doc.get("slots", {}).get("quantize", [])),
            ],
            search={"n_trials": 2},
        ),
        "local-dp": study_job(
            root,
            "local-dp",
            [snippet(lambda doc: "middleware" in doc.get("search", {}).get("slots", {}))],
            private=True,
            search={"n_trials": 2},
        ),
        "random-pruning": study_job(
            root,
            "random-pruning",
            [snippet(lambda doc: list(doc) == ["search"] and "slots" in doc["search"])],
        ),
    }
    found["random-pruning"].env = plugin_env
    if (SHARED_DATA / "mnist").is_dir():
        mnist = snippet(lambda doc: doc.get("dataset", {}).get("name") == "mnist")
        found["mnist"] = study_job(root, "mnist", [mnist])
        # The README's root, ../shared/data, is relative to the checkout: run from a folder
        # whose ../shared/data is the shared data, wherever this clone lives.
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(SHARED_DATA, target_is_directory=True)
        found["mnist"].cwd = root / "mnist"
    found |= mistake_jobs(root)
    found["own-model"] = own_model_job(root)
    found["image-folder"] = image_folder_job(root)
    found["transfer"] = transfer_job(root)
    found |= doc_page_jobs(root, example_plugin_site)
    for family in FAMILIES:
        for index, combination in enumerate(COMBINATIONS):
            found[f"{family}-{index}"] = compressor_job(root, family, combination)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(Job.run, found.values()))
    return found


def test_every_toml_snippet_is_run(jobs):
    claimed = {line for job in jobs.values() for line in job.claims}
    pyproject = snippet(lambda doc: "project" in doc)  # checked by the next test
    shown = {block.where for block in doc_blocks("toml")} - {pyproject.where}
    if "mnist" not in jobs:
        shown -= {snippet(lambda doc: doc.get("dataset", {}).get("name") == "mnist").where}
    assert shown - claimed == set(), "these toml blocks (file:line) are not run"


def test_plugin_packaging_snippet_matches_the_example_plugin():
    shown = snippet(lambda doc: "project" in doc).toml
    real = tomllib.loads((REPO / "plugins/fedsearch-example-plugin/pyproject.toml").read_text())
    assert merged(real, shown) == real  # everything the README shows is in the real file


def test_quickstart_commands(jobs):
    job = jobs["quickstart"]
    run = job.ok("run").stdout
    exported = [job.ok(name) for name in job.results if name.startswith("export onnx ")]
    assert len(exported) >= 2, "the README shows a trial export and a --pareto export"
    front = json.loads((job.folder / "front" / "exports.json").read_text())
    assert front and all((job.folder / "front" / Path(row["path"]).name).is_file() for row in front)
    sample = text_block("Pareto front of", "").text
    header = next(line for line in sample.splitlines() if line.split()[:1] == ["trial"]).split()
    assert "Pareto front of quickstart" in run
    cells = [unboxed(line) for line in run.splitlines()]
    assert header in cells, run  # the same columns, in order (the README leaves out the box)
    dashboard = re.search(r"^\s+(optuna-dashboard .*)$", sample, re.M)[1]
    assert dashboard in run
    trials = job.trials("quickstart")
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 4
    assert (job.folder / "model.onnx").stat().st_size > 0
    assert '"quickstart"' in job.ok("validate").stdout
    assert job.ok("pareto").stdout.lstrip().startswith("[")
    assert "trials by worker" in job.ok("status").stdout
    job.ok("report")
    assert (job.folder / "report" / "index.html").is_file()
    job.ok("export artifact")
    assert (job.folder / "model.fsz").read_bytes()[:3] == b"FSZ"
    job.ok("export torchscript")
    assert (job.folder / "model.pt").stat().st_size > 0


def test_cli_reference_is_generated_from_the_parser(jobs):
    page = (REPO / "docs" / "cli.md").read_text()
    assert "<!-- fedsearch:cli -->" in page.splitlines()
    reference = load_hooks().cli_reference()
    for name in COMMANDS:
        usage = jobs["help"].ok(name).stdout
        assert f"## fedsearch {name}\n" in reference
        for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", usage):
            assert option in reference, f"fedsearch {name} {option} is not in the reference"


def test_mistakes_give_the_one_line_errors_shown(jobs):
    shown = text_block("fedsearch: error:", "").text
    lines = shown.strip().splitlines()
    made = [
        ("mistake-space", "validate"),
        ("mistake-study", "validate"),
        ("mistake-study", "status"),
        ("mistake-study", "timeout"),
    ]
    assert len(lines) == len(made)
    for (job, name), line in zip(made, lines, strict=True):
        result = jobs[job].results[name]
        assert result.returncode == 2
        (error,) = result.stderr.strip().splitlines()
        assert error.startswith(line.removesuffix("...")), error


def test_every_command_of_the_docs_pages_runs(jobs):
    pages = {name: job for name, job in jobs.items() if name.startswith("page ")}
    shown = [c.text for c in doc_commands(DOC_FILES[1:]) if not claimed_elsewhere(c)]
    ran = [
        step.split(": ", 1)[1]
        for job in pages.values()
        for step, _ in job.commands
        if not step.startswith("setup: ")
    ]
    assert sorted(ran) == sorted(shown)
    for job in pages.values():
        for step, _ in job.commands:
            job.ok(step)


def test_plugins_lists_the_example_plugin(jobs):
    output = jobs["plugins"].ok("plugins").stdout
    assert "random-pruning" in output and "random" in output


def _all_complete(job: Job, count: int = 1) -> list[optuna.trial.FrozenTrial]:
    job.ok("run")
    trials = job.trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * count, [
        trial.user_attrs.get("error") for trial in trials
    ]
    return trials


def test_search_space_snippet_validates_as_shown_and_runs(jobs):
    job = jobs["space"]
    shown = text_block("dimension  ", "").text
    validated = [" ".join(unboxed(line)) for line in job.ok("validate").stdout.splitlines()]
    for row in shown.splitlines()[1:]:
        assert " ".join(row.split()) in validated, row
    _all_complete(job)


def test_constraints_objectives_and_workers_snippets_run(jobs):
    (trial,) = _all_complete(jobs["limits"])
    assert len(trial.values) == 5  # flops and latency_ms after the three built in
    assert set(trial.user_attrs["constraints"]) == {
        "max_model_bytes",
        "min_accuracy",
        "max_comm_bytes",
    }


def test_execution_snippet_runs(jobs):
    _all_complete(jobs["execution"])


def test_searched_local_dp_snippet_records_the_sampled_knobs(jobs):
    trials = _all_complete(jobs["local-dp"], count=2)
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["noise_multiplier"] == trial.params["middleware.local_dp.noise_multiplier"]
        assert attrs["clip_norm"] == trial.params["middleware.local_dp.clip_norm"]
        assert (attrs["accountant"], attrs["dp"]["level"]) == ("pld", "local")
    assert len({trial.params["middleware.local_dp.clip_norm"] for trial in trials}) == 2


def test_codec_snippets_run(jobs):
    trials = _all_complete(jobs["codecs"], count=2)
    shown = snippet(lambda doc: "uplink_codec" in doc.get("federation", {})).toml["federation"]
    for trial in trials:
        assert trial.params["uplink_codec"] in shown_slots("uplink_codec")
    assert shown["downlink"] == "delta"


def shown_slots(slot: str) -> list[str]:
    return space_snippet(slot).toml["slots"][slot]


def test_third_party_pruning_snippet_runs(jobs):
    _all_complete(jobs["random-pruning"])


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST not present")
def test_mnist_dataset_snippet_runs(jobs):
    (trial,) = _all_complete(jobs["mnist"])
    assert trial.user_attrs["partition"]["examples"] == 48000  # MNIST less 20% validation


def test_own_model_and_data_snippets_run_export_and_load(jobs):
    job = jobs["own-model"]
    job.ok("run")
    trials = job.trials("own-model")
    assert [trial.state for trial in trials] == [TrialState.COMPLETE]
    assert trials[0].user_attrs["selection"]["architecture"]["name"] == "factory"
    assert trials[0].user_attrs["partition"]["clients"] == 10  # clients.txt's writers
    job.ok("export")
    load = python_snippet("with_factories(").text
    result = subprocess.run(
        [sys.executable, "-c", load], cwd=job.folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_image_folder_snippet_runs(jobs):
    (trial,) = _all_complete(jobs["image-folder"])
    assert trial.user_attrs["partition"]["examples"] > 0


def test_transfer_snippet_runs_onto_other_classes_with_frozen_searched(jobs):
    trials = _all_complete(jobs["transfer"], count=3)
    frozen = {trial.params["architecture.from_teacher.frozen"] for trial in trials}
    assert frozen == {0, 1}, frozen  # the snippet's range, both sampled
    for trial in trials:
        bytes_frozen = trial.user_attrs["frozen_download_bytes"]
        assert (bytes_frozen > 0) == (trial.params["architecture.from_teacher.frozen"] == 1)
        # a 64-32 body and a head for the dataset's 10 classes, not the file's 5
        assert trial.user_attrs["parameters"] == 64 * 32 + 32 + 32 * 10 + 10


def test_compressor_table_is_what_is_installed(registry):
    shown = {name for _, name in COMPRESSOR_ROW.findall(DOCS_TEXT)}
    assert shown == set(registry.names("compressor"))
    assert shown == {name for combination in COMBINATIONS for name in combination.values()}
    assert "CNN student and teacher" in DOCS_TEXT and "not for `dscnn`" in DOCS_TEXT  # SUBSTITUTES


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("index", range(len(COMBINATIONS)))
def test_every_compressor_runs_on_every_family(jobs, family, index):
    (trial,) = _all_complete(jobs[f"{family}-{index}"])
    selection = trial.user_attrs["selection"]
    assert selection["architecture"]["name"] == family
    for stage, name in COMBINATIONS[index].items():
        assert selection[stage]["name"] == SUBSTITUTES.get((family, name), name)


def test_many_workers_command_runs_on_postgres(tmp_path, postgres_url):
    (command,) = [c.text for c in doc_commands() if "postgresql" in c.text]
    shown_url = re.search(r"--storage (\S+)", command)[1]
    study = tomllib.loads((REPO / "studies" / "quickstart.toml").read_text())
    shutil.copytree(REPO / "search_spaces", tmp_path / "search_spaces")
    write_toml(tmp_path / "studies" / "quickstart.toml", merged(study, BUDGET))
    args = command.replace(shown_url, postgres_url).split()[1:]
    result = fedsearch(*args, cwd=tmp_path, env=WIDE)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="quickstart", storage=postgres_url).get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE]


def test_install_commands_name_real_extras_and_paths():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    installs = re.findall(r"pip install ([^&\n]+)", DOCS_TEXT)
    assert installs
    for install in installs:
        for target in install.split():
            if match := re.fullmatch(r"""-e|['"]?\.\[(\w+)\]['"]?""", target):
                assert match[1] is None or match[1] in extras, install
            elif target.startswith("./"):
                assert (REPO / target).is_dir(), install
    test_command = next(b.text for b in doc_blocks("bash", [README]) if "pytest" in b.text)
    assert test_command.strip() in (REPO / ".ci" / "run").read_text()


def test_plugin_code_snippets_pass_the_conformance_suites(tmp_path, example_plugin_site):
    """The docs' plugin code, as a plugin author copies it, passes the suites they show."""
    compressor_case, compressor, architecture, architecture_case = (
        python_snippet(marker).text
        for marker in (
            "class TestMyPruner(CompressorTestCase)",
            "class RandomPruning(",
            "(Architecture):",
            "ArchitectureTestCase",
        )
    )
    (tmp_path / "my_plugin.py").write_text(f"{compressor}\nMyPruner = RandomPruning\n")
    (tmp_path / "test_snippets.py").write_text(
        f"{compressor_case}\n\n{architecture}\n\n{architecture_case}"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippets.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{example_plugin_site}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout


@pytest.mark.parametrize(
    ("suite", "module"),
    [
        ("CodecTestCase", "test_codec_conformance"),
        ("StrategyTestCase", "test_strategy_conformance"),
        ("PrunerTestCase", "test_pruner_conformance"),
    ],
)
def test_conformance_snippets_are_the_builtins_tested_cases(suite, module):
    """Each suite's docs snippet defines cases that tests/builtins runs in full, as written."""
    import importlib

    import fedsearch.testing

    namespace: dict[str, Any] = {}
    exec(python_snippet(f"({suite})").text, namespace)
    base = getattr(fedsearch.testing, suite)
    cases = [v for v in namespace.values() if isinstance(v, type) and v is not base]
    cases = [case for case in cases if issubclass(case, base)]
    assert cases
    tested = importlib.import_module(f"tests.builtins.{module}")
    for case in cases:
        twin = getattr(tested, case.__name__)
        for attribute in ("codec_class", "strategy_class", "pruner_class", "params", "inner"):
            assert getattr(case, attribute, None) == getattr(twin, attribute, None), attribute
        for flag in ("lossless", "server_optimizer", "weighs_by_examples"):
            assert getattr(case, flag, None) == getattr(twin, flag, None), flag
        if "max_error" in vars(case):
            values = torch.randn(50, dtype=torch.float64)
            expected = twin().max_error(values)
            assert torch.equal(torch.as_tensor(case().max_error(values)), torch.as_tensor(expected))
        for name in dir(case):
            if name.startswith("test_declares"):
                getattr(case(), name)()
