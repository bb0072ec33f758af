"""The ``fedsearch`` subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape

from fedsearch._errors import ConfigError
from fedsearch.cli._display import (
    export_table,
    pareto_table,
    plugins_table,
    space_table,
    status_tables,
)
from fedsearch.cli._progress import RichProgress
from fedsearch.federated import device_note
from fedsearch.host import describe_plugins, get_plugin_manager, get_registry
from fedsearch.search import resolve_study
from fedsearch.study import (
    artifact_dir,
    describe_front,
    export_trials,
    front_summary,
    load_existing_study,
    pareto_rows,
    run_study,
    save_dashboard_plots,
    study_status,
)
from fedsearch.study._storage import worker_id
from fedsearch.study._warm_start import with_warm_start


def run(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch run``: create or join the study and run its trials."""
    study = resolve_study(
        args.study_file, get_registry(), storage=args.storage, study_name=args.study_name
    )
    if args.warm_start_storage is not None and args.warm_start is None:
        raise ConfigError("give the study to start from with --warm-start", field="--warm-start")
    if args.warm_start is not None:
        study = with_warm_start(study, args.warm_start, args.warm_start_storage)
    console.print(
        f"study [bold]{escape(study.study_name)}[/] in {escape(study.storage_url)} "
        f"(worker {escape(worker_id())})"
    )
    if note := device_note(study.config.device, study.device):
        console.print(note, markup=False, highlight=False)
    with RichProgress(console) as progress:
        optuna_study = run_study(
            study,
            n_trials=args.n_trials,
            timeout=args.timeout,
            threads=args.threads,
            progress=progress,
        )
    _print_front(console, optuna_study, f"Pareto front of {study.study_name}", full=args.full)
    save_dashboard_plots(study, optuna_study)
    dashboard = ["optuna-dashboard", study.storage_url, "--artifact-dir", str(artifact_dir(study))]
    console.print("Inspect it in the dashboard:", style="bold")
    console.print("  " + shlex.join(dashboard), markup=False, highlight=False)
    return 0


def plugins(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch plugins``: the loaded plugins and their components."""
    manager = get_plugin_manager()
    infos = describe_plugins(manager, get_registry(manager))
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
    else:
        console.print(plugins_table(infos))
    return 0


def validate(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch validate``: print the resolved study and its search space."""
    study = resolve_study(args.study_file, get_registry())
    resolved = study.config.model_dump(mode="json")
    resolved["storage"] = study.storage_url
    resolved["search"]["space"] = os.path.normpath(
        Path(args.study_file).parent / study.config.search.space
    )
    if args.json:
        print(json.dumps({"study": resolved, "space": study.space.rows()}, indent=2))
        return 0
    console.print(f"{escape(args.study_file)}: valid", style="bold green")
    console.print_json(json.dumps(resolved))
    console.print(space_table(study.space.rows()))
    return 0


def pareto(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch pareto``: the Pareto front of a stored study."""
    study = load_existing_study(args.storage, args.study_name)
    rows = pareto_rows(study)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_front(console, study, f"Pareto front of {study.study_name}", rows, full=args.full)
    return 0


def status(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch status``: trials by state and by worker, failures, best trade-offs."""
    summary = study_status(load_existing_study(args.storage, args.study_name))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for table in status_tables(summary, full=args.full):
            console.print(table)
    return 0


def report(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch report``: HTML report and PNG plots of a stored study."""
    from fedsearch.report import write_report  # matplotlib is imported only here

    study = load_existing_study(args.storage, args.study_name)
    index = write_report(study, args.output, artifact_dir=args.artifact_dir)
    console.print(f"report written: {escape(str(index))}")
    return 0


def _print_front(
    console: Console,
    study: optuna.Study,
    title: str,
    rows: list[dict[str, Any]] | None = None,
    *,
    full: bool = False,
) -> None:
    """The feasible front, identical trials folded, and a note on what it leaves out."""
    console.print(pareto_table(pareto_rows(study) if rows is None else rows, title, full=full))
    console.print(describe_front(front_summary(study)), markup=False, highlight=False)


def export(args: argparse.Namespace, console: Console) -> int:
    """``fedsearch export``: write a trial (or the front), re-score each file in its runtime."""
    registry = get_registry()
    if args.study_file is not None:  # it names the model factories the artifacts need
        registry = resolve_study(args.study_file, registry).registry
    scores = export_trials(
        args.storage,
        args.study_name,
        args.format,
        registry,
        trial=None if args.pareto else args.trial,
        output=args.output,
        tier=args.tier,
    )
    console.print(export_table(scores))
    if args.pareto:
        console.print(f"table written: {Path(args.output) / 'exports.json'}", markup=False)
    return 0
