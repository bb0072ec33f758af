"""Rich renderings shared by the commands.

Every piece of user data (study names, selections like ``uplink_codec=[absmax(b=4)]``,
paths, error messages, plugin names) goes into a table as a ``Text`` object, so
that rich never reads square brackets in it as markup.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from fedsearch.host import PluginInfo
from fedsearch.search import describe_selection
from fedsearch.study import describe_front


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1024)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(title: str) -> Table:
    return Table(title=Text(title, style="table.title"), title_justify="left")


def _row(table: Table, *cells: object) -> None:
    table.add_row(*(Text(str(cell)) for cell in cells))


_PARETO_KEYS = {
    "trial",
    "val_accuracy",
    "test_accuracy",
    "model_bytes",
    "comm_bytes",
    "selection",
    "identical",
}


def pareto_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The Pareto front: objectives (extra ones too), test accuracy and what each trial ran.

    A row that stands for several trials with identical objectives says
    ``+N identical`` after its trial number.
    """
    table = _table(title)
    extras = [key for key in (rows[0] if rows else {}) if key not in _PARETO_KEYS]
    for header, justify in (
        ("trial", "right"),
        ("val acc", "right"),
        ("test acc", "right"),
        ("model", "right"),
        ("comm", "right"),
        *((extra, "right") for extra in extras),
        ("selection", "left"),
    ):
        table.add_column(Text(header), justify=justify)
    for row in rows:
        test = row.get("test_accuracy")
        identical = row.get("identical", [])
        _row(
            table,
            f"{row['trial']} +{len(identical)} identical" if identical else row["trial"],
            f"{row['val_accuracy']:.4f}",
            "-" if test is None else f"{test:.4f}",
            format_bytes(row["model_bytes"]),
            format_bytes(row["comm_bytes"]),
            *(f"{row[extra]:.4g}" for extra in extras),
            describe_selection(row["selection"]),
        )
    return table


def plugins_table(infos: list[PluginInfo]) -> Table:
    """Loaded plugins, their distributions and components."""
    table = _table("fedsearch plugins")
    for header in ("plugin", "distribution", "components"):
        table.add_column(header)
    for info in infos:
        distribution = f"{info.distribution} {info.version}" if info.distribution else "-"
        components = "; ".join(
            f"{kind}: {', '.join(names)}" for kind, names in info.components.items()
        )
        _row(table, info.name, distribution, components or "-")
    return table


def space_table(rows: list[tuple[str, str, str]]) -> Table:
    """Search dimensions with their conditions and ranges."""
    table = _table("search space")
    for header in ("dimension", "when", "values"):
        table.add_column(header, overflow="fold")
    for row in rows:
        _row(table, *row)
    return table


def status_tables(summary: dict[str, Any]) -> list[Table | Text]:
    """Tables of ``fedsearch status``: states, workers, failures, the Pareto front and its note."""
    states = _table(f"study {summary['study']} (budget {summary['budget']})")
    for state in summary["states"]:
        states.add_column(Text(state.lower()), justify="right")
    _row(states, *summary["states"].values())
    workers = _table("trials by worker")
    for header in ("worker", "complete", "fail", "running", "other", "busy"):
        workers.add_column(header, justify="left" if header == "worker" else "right")
    for worker, entry in summary["workers"].items():
        counts = dict(entry["states"])
        main = [counts.pop(state, 0) for state in ("COMPLETE", "FAIL", "RUNNING")]
        _row(
            workers,
            worker,
            *main,
            sum(counts.values()),
            f"{entry['busy_s']:.0f} s",
        )
    tables: list[Table | Text] = [states, workers]
    if summary["failures"]:
        failures = _table("latest failures")
        for header in ("trial", "worker", "error"):
            failures.add_column(header)
        for failure in summary["failures"]:
            _row(
                failures,
                failure["trial"],
                failure["worker"] or "-",
                f"{failure['error_type']}: {failure['error']}",
            )
        tables.append(failures)
    best = ", ".join(f"{name}: trial {number}" for name, number in summary["best"].items())
    tables.append(pareto_table(summary["pareto"], f"best trade-offs so far ({best or 'none yet'})"))
    tables.append(Text(describe_front(summary["front"])))
    return tables
