"""Pareto-front scatter plots, one per pair of objectives (matplotlib, PNG)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import optuna

from fedsearch._errors import ConfigError

_BYTES_SUFFIX = "_bytes"


def objective_pairs(names: list[str]) -> list[tuple[int, int]]:
    """Index pairs of the objectives, in order: (0, 1), (0, 2), (1, 2), ..."""
    return list(itertools.combinations(range(len(names)), 2))


def plot_pairs(
    complete: list[optuna.trial.FrozenTrial],
    front: list[optuna.trial.FrozenTrial],
    names: list[str],
    folder: Path,
) -> list[Path]:
    """Write ``pareto-<x>-<y>.png`` for every pair of objectives; return the paths.

    Every COMPLETE trial is a grey dot, the Pareto trials are highlighted and
    labelled with their numbers; byte axes are logarithmic.
    """
    pyplot = _pyplot()
    paths = []
    front_numbers = {trial.number for trial in front}
    others = [trial for trial in complete if trial.number not in front_numbers]
    for first, second in objective_pairs(names):
        figure, axes = pyplot.subplots(figsize=(6, 4.5), dpi=100)
        axes.scatter(
            [t.values[first] for t in others],
            [t.values[second] for t in others],
            s=14,
            color="#b0b0b0",
            label="other trials",
        )
        axes.scatter(
            [t.values[first] for t in front],
            [t.values[second] for t in front],
            s=28,
            color="#d62728",
            label="Pareto front (all objectives)",
        )
        for trial in front:
            axes.annotate(
                str(trial.number),
                (trial.values[first], trial.values[second]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
        axes.set_xlabel(names[first])
        axes.set_ylabel(names[second])
        if names[first].endswith(_BYTES_SUFFIX):
            axes.set_xscale("log")
        if names[second].endswith(_BYTES_SUFFIX):
            axes.set_yscale("log")
        axes.set_title(f"{names[second]} vs {names[first]}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = folder / f"pareto-{names[first]}-{names[second]}.png"
        figure.savefig(path)
        pyplot.close(figure)
        paths.append(path)
    return paths


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
