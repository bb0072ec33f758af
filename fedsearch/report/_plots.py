"""The report's plots (matplotlib, PNG): the front in every pair of objectives, learning curves.

Every projection shows all feasible trials, the trials of the full Pareto front
highlighted and labelled, the front of that projection drawn as a staircase,
and the teacher as a star. Byte axes are logarithmic with SI tick labels.
Trials below the accuracy floor are left out (they would squeeze the accuracy
axis towards chance level) and counted in the legend.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna

from fedsearch._errors import ConfigError
from fedsearch._units import format_bytes
from fedsearch.study._pareto import is_feasible
from fedsearch.study._trial_facts import accuracy_history, objective_label

_BYTES_SUFFIX = "_bytes"
_FIGURE = {"figsize": (8, 6), "dpi": 110}
_OFFSETS = [(5, 5), (5, -11), (-14, 5), (-14, -11), (8, 14), (8, -20)]
"""Label positions tried in turn (points from the marker) before a label is dropped."""


def objective_pairs(names: list[str]) -> list[tuple[int, int]]:
    """Index pairs of the objectives, in order: (0, 1), (0, 2), (1, 2), ..."""
    return list(itertools.combinations(range(len(names)), 2))


def axis_label(name: str) -> str:
    """``model_bytes`` -> ``model size (bytes, log scale)``."""
    if name.endswith(_BYTES_SUFFIX):
        return f"{objective_label(name)} (bytes, log scale)"
    if name.endswith("accuracy"):
        return f"{objective_label(name)} (fraction correct)"
    return name


def projection_front(
    points: list[tuple[float, float, int]], maximize: tuple[bool, bool]
) -> list[tuple[float, float, int]]:
    """The points no other point dominates in these two objectives, sorted along x."""
    sign = [-1 if up else 1 for up in maximize]  # as minimisation
    ordered = sorted(points, key=lambda p: (sign[0] * p[0], sign[1] * p[1]))
    front, best = [], float("inf")
    for point in ordered:
        if sign[1] * point[1] < best:
            front.append(point)
            best = sign[1] * point[1]
    return sorted(front, key=lambda p: p[0])


def plot_pairs(
    study: optuna.Study,
    complete: list[optuna.trial.FrozenTrial],
    front: list[optuna.trial.FrozenTrial],
    names: list[str],
    folder: Path,
    teacher: dict[str, float],
) -> list[Path]:
    """Write ``pareto-<x>-<y>.png`` for every pair of objectives; return the paths."""
    pyplot = _pyplot()
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    feasible = [trial for trial in complete if is_feasible(trial)]
    below = len(complete) - len(feasible)
    front_numbers = {trial.number for trial in front}
    paths = []
    for first, second in objective_pairs(names):
        figure, axes = pyplot.subplots(**_FIGURE)
        others = [t for t in feasible if t.number not in front_numbers]
        hidden = f"; {below} infeasible not shown" if below else ""
        axes.scatter(
            [t.values[first] for t in others],
            [t.values[second] for t in others],
            s=16,
            color="#a0a0a0",
            label=f"other feasible trials{hidden}",
        )
        points = [(t.values[first], t.values[second], t.number) for t in feasible]
        line = projection_front(points, (maximize[first], maximize[second]))
        axes.step(
            [p[0] for p in line],
            [p[1] for p in line],
            where="post" if maximize[first] == maximize[second] else "pre",
            color="#d62728",
            alpha=0.5,
            label="front of this projection",
        )
        axes.scatter(
            [t.values[first] for t in front],
            [t.values[second] for t in front],
            s=36,
            color="#d62728",
            zorder=3,
            label="Pareto front (all objectives)",
        )
        if names[first] in teacher and names[second] in teacher:
            axes.scatter(
                [teacher[names[first]]],
                [teacher[names[second]]],
                marker="*",
                s=220,
                color="#1f77b4",
                edgecolors="black",
                zorder=4,
                label="teacher",
            )
        _format_axes(axes, names[first], names[second])
        axes.set_title(f"{objective_label(names[second])} vs {objective_label(names[first])}")
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=8, loc="best")
        figure.tight_layout()
        _label_points(figure, axes, [(t.values[first], t.values[second], t.number) for t in front])
        path = folder / f"pareto-{names[first]}-{names[second]}.png"
        figure.savefig(path)
        pyplot.close(figure)
        paths.append(path)
    return paths


def plot_learning_curves(
    front: list[optuna.trial.FrozenTrial], teacher: dict[str, Any] | None, folder: Path
) -> Path:
    """Write ``learning-curves.png``: validation accuracy per round of every front trial."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(**_FIGURE)
    for trial in front:
        history = accuracy_history(trial)
        if history:
            rounds = range(1, len(history) + 1)
            axes.plot(rounds, history, marker=".", label=f"trial {trial.number}")
    if teacher:
        axes.axhline(
            teacher["val_accuracy"], color="#1f77b4", linestyle="--", label="teacher (final)"
        )
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("federated round")
    axes.set_ylabel("validation accuracy (fraction correct)")
    axes.set_title("learning curves of the Pareto front")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path = folder / "learning-curves.png"
    figure.savefig(path)
    pyplot.close(figure)
    return path


def _format_axes(axes: Any, x_name: str, y_name: str) -> None:
    from matplotlib.ticker import FuncFormatter

    bytes_ticks = FuncFormatter(lambda value, _: format_bytes(value))
    sides = (
        (x_name, axes.xaxis, axes.set_xscale, axes.get_xlim, axes.dataLim.intervalx),
        (y_name, axes.yaxis, axes.set_yscale, axes.get_ylim, axes.dataLim.intervaly),
    )
    labels = {x_name: axis_label(x_name), y_name: axis_label(y_name)}
    for name, axis, scale, limits, data in sides:
        if name.endswith(_BYTES_SUFFIX):
            if min(data) > 0:
                scale("log")
            else:  # a trial that moved no bytes: a zero has no place on a log axis
                labels[name] = f"{objective_label(name)} (bytes)"
            low, high = limits()
            axis.set_major_formatter(bytes_ticks)
            # Less than a decade shows no major tick: label the minor ones then.
            minor = bytes_ticks if high < 10 * low else FuncFormatter(lambda value, _: "")
            axis.set_minor_formatter(minor)
    axes.set_xlabel(labels[x_name])
    axes.set_ylabel(labels[y_name])


def _label_points(figure: Any, axes: Any, points: list[tuple[float, float, int]]) -> None:
    """Label each point with its trial number where the label overlaps no label placed yet."""
    renderer = figure.canvas.get_renderer()
    placed: list[Any] = []
    for x, y, number in points:
        for offset in _OFFSETS:
            label = axes.annotate(
                str(number), (x, y), textcoords="offset points", xytext=offset, fontsize=8
            )
            box = label.get_window_extent(renderer).expanded(1.1, 1.2)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            label.remove()


def _pyplot() -> ModuleType:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "fedsearch report needs matplotlib; install it with: pip install 'fedsearch[report]'",
            field="report",
        ) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot
