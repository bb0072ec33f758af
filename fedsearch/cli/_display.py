"""Rich renderings shared by the commands.

Every piece of user data (study names, selections like ``uplink_codec=[absmax(b=4)]``,
paths, error messages, plugin names) goes into a table as a ``Text`` object, so
that rich never reads square brackets in it as markup.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from fedsearch._units import format_bytes
from fedsearch.host import PluginInfo
from fedsearch.search import describe_fixed, describe_searched, describe_selection
from fedsearch.study import ExportScore, describe_front


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
    "params",
    "identical",
}


def pareto_table(rows: list[dict[str, Any]], title: str, *, full: bool = False) -> Group:
    """The Pareto front, one line per trial: objectives, test accuracy and what the search chose.

    Above the table, the settings no shown trial searched, once. ``full``
    shows every setting of every trial instead (lines may wrap). A row that
    stands for several trials with identical objectives says ``+N`` after its
    trial number. Sizes are SI (``format_bytes``).
    """
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    extras = [key for key in (rows[0] if rows else {}) if key not in _PARETO_KEYS]
    cells = [
        [
            f"{row['trial']} +{len(row['identical'])}" if row.get("identical") else row["trial"],
            f"{row['val_accuracy']:.4f}",
            "-" if row.get("test_accuracy") is None else f"{row['test_accuracy']:.4f}",
            format_bytes(row["model_bytes"]),
            format_bytes(row["comm_bytes"]),
            *(f"{row[extra]:.4g}" for extra in extras),
            describe_selection(row["selection"])
            if full
            else describe_searched(row["selection"], row.get("params", {})),
        ]
        for row in rows
    ]
    headers = ["trial", "val acc", "test acc", "model", "comm", *extras]
    for index, header in enumerate(headers):  # numbers keep their width; the choices give way
        width = max(len(str(line[index])) for line in [[*headers], *cells])
        table.add_column(Text(header), justify="right", no_wrap=True, min_width=width)
    table.add_column(
        Text("selection"),  # without --full: only what the search chose
        justify="left",
        overflow="fold" if full else "ellipsis",
    )
    for *numbers, choices in cells:
        table.add_row(
            *(Text(str(cell)) for cell in numbers),
            Text(choices, no_wrap=not full, overflow="fold" if full else "ellipsis"),
        )
    heading = Text(title, style="table.title")
    if full or not rows:
        return Group(heading, table)
    fixed = describe_fixed([(row["selection"], row.get("params", {})) for row in rows])
    return Group(heading, Text(f"fixed settings: {fixed or 'none'}"), table)


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


def status_tables(summary: dict[str, Any], *, full: bool = False) -> list[Table | Text | Group]:
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
    tables: list[Table | Text | Group] = [states, workers]
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
    title = f"best trade-offs so far ({best or 'none yet'})"
    tables.append(pareto_table(summary["pareto"], title, full=full))
    tables.append(Text(describe_front(summary["front"])))
    return tables


def export_table(scores: list[ExportScore]) -> Table:
    """Exported files re-scored in their runtimes: size, ratio to the artifact, accuracy, drift."""
    table = Table(title="exports, re-scored in their runtimes", title_justify="left")
    headers = ("trial", "format", "file", "bytes", "x model", "val acc", "test acc", "max diff")
    for header in headers:
        left = header in ("format", "file")
        table.add_column(header, justify="left" if left else "right", overflow="fold")
    for score in scores:
        table.add_row(
            str(score.trial),
            score.format,
            Text(score.path),  # user text: never read as markup
            str(score.bytes),  # exact: compare with the artifact's length
            f"{score.ratio:.2f}",
            f"{score.val_accuracy:.4f}",
            f"{score.test_accuracy:.4f}",
            f"{score.max_difference:.1e}",
        )
    return table
