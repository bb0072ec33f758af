"""Study files for tests, built from dicts and written with a TOML writer.

Tests change a study by naming the fields they change, never by substituting
text in a TOML string::

    path = write_study(tmp_path, tiny_study(federation={"rounds": 1}, search={"n_trials": 2}))
    path = write_study(tmp_path, tiny_study(), tiny_space(slots={"prune": ["random"]}))

Nested dicts merge into the defaults; any other value (lists included)
replaces the default; ``DROP`` removes a key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomli_w

DROP = object()
"""Value that removes a key from the defaults (``tiny_study(teacher=DROP)``)."""

_TINY_SPACE: dict[str, Any] = {
    "slots": {
        "architecture": ["mlp"],
        "prune": ["none", "magnitude"],
        "quantize": ["none", "uniform"],
        "distill": ["none", "soft_target"],
    },
    "dimensions": {
        "architecture.mlp.depth": {"value": 1},
        "architecture.mlp.widths": {"choices": [16, 32]},
        "quantize.uniform.bits": {"choices": [4, 8]},
    },
}

_TINY_STUDY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "dataset": {"name": "digits", "val_fraction": 0.2},
    "federation": {
        "num_clients": 4,
        "rounds": 3,
        "fraction": 0.5,
        "local_epochs": 1,
        "batch_size": 32,
        "learning_rate": 0.3,
    },
    "teacher": {"architecture": {"name": "mlp", "params": {"widths": [32]}}, "rounds": 3},
    "search": {"space": "space.toml", "n_trials": 3, "sampler": {"name": "random"}},
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``changes`` merged in (dicts recursively)."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def tiny_study(**changes: Any) -> dict[str, Any]:
    """The tiny study (digits, 4 clients, 3 rounds, 3 random trials) with ``changes``."""
    return merged(_TINY_STUDY, changes)


def tiny_space(**changes: Any) -> dict[str, Any]:
    """The tiny search space (an MLP, optional pruning, quantization, distillation)."""
    return merged(_TINY_SPACE, changes)


def write_toml(path: Path, document: dict[str, Any]) -> Path:
    """Write ``document`` as TOML to ``path`` (parents created); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(document))
    return path


def write_study(
    folder: Path,
    study: dict[str, Any] | None = None,
    space: dict[str, Any] | None = None,
    *,
    name: str = "study.toml",
) -> Path:
    """Write ``study`` (default: the tiny one) and its search space into ``folder``.

    The study's outputs go to ``folder/runs`` unless it names an ``output_dir``;
    the space is written as ``space.toml`` beside it (default: the tiny space).
    """
    study = merged({"output_dir": (folder / "runs").as_posix()}, study or tiny_study())
    write_toml(folder / "space.toml", tiny_space() if space is None else space)
    return write_toml(folder / name, study)
