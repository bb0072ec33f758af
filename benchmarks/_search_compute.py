"""Hypervolume as a function of compute, with and without multi-fidelity pruning.

Used by ``search_quality.py --compute``. Compute is counted in client-rounds
(one client training locally for one round: rounds a trial ran x clients per
round) and in wall time (shared machine: indicative only). The study's one-off
teacher training is the same for every sampler and is left out of both.

Each trial runs through the real pruning code (``RungPruning`` with the
``pareto_asha`` plugin, rung points stored in the in-memory Optuna study). A
trial's trajectory (per-round records, artifact bytes at each rung, final
objectives) depends only on its selection (the study seed is fixed, and a
trial's first r rounds are the same whether it stops there or not), so
trajectories are cached on disk by selection: a pruned trial stores the
rounds it ran; a later trial with the same selection replays them, and runs
again from the start only if it needs rounds the cache lacks. Replays are
charged the compute of the rounds replayed, as if run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from fedsearch import DivergenceError
from fedsearch.federated import RoundRecord
from fedsearch.study._warm_start import WarmStart, enqueue_front
from fedsearch.trial import evaluate_selection
from fedsearch.trial._rungs import RungProbe, RungPruning

PRUNER = {"name": "pareto_asha", "params": {}}
"""The pruner measured: the plugin's defaults unless ``--pruner-params`` says otherwise."""


class _RecordingProbe(RungProbe):
    """The real probe, remembering the artifact size it measured at each rung."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__()
        self.sizes = sizes

    def model_bytes(self, round_index: int) -> int:
        size = super().model_bytes(round_index)
        self.sizes[str(round_index)] = size
        return size


class _CachedProbe(RungProbe):
    """Artifact sizes from the cache (a replayed trial)."""

    def __init__(self, sizes: dict[str, int], extra: int) -> None:
        super().__init__()
        self.sizes = sizes
        self.extra_one_time_bytes = extra

    def model_bytes(self, round_index: int) -> int:
        return self.sizes[str(round_index)]


@dataclass
class TrialCost:
    """What one trial cost and gave."""

    values: tuple[float, float, float] | None
    rounds: int
    wall_s: float
    failed: bool = False
    """The training diverged: the trial fails, as in a study, after the rounds it ran."""


@dataclass
class TrajectoryCache:
    """Trajectories by selection, on disk."""

    path: Path
    entries: dict[str, Any] = field(default_factory=dict)
    runs: int = 0

    @classmethod
    def load(cls, path: Path) -> TrajectoryCache:
        entries = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, entries)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.entries))


def evaluate(
    runtime: Any,
    resolved: Any,
    cache: TrajectoryCache,
    trial: optuna.Trial,
    pruner: Any | None,
    measure: tuple[int, ...] = (),
) -> TrialCost:
    """Run (or replay) one trial under the pruner (None: no pruning).

    ``measure``: rounds whose artifact size is recorded whatever the pruner,
    so runs under other rungs can replay the trajectory.
    """
    selection = resolved.space.suggest(trial)
    key = json.dumps(selection.as_dict(), sort_keys=True)
    entry = cache.entries.get(key)
    if entry is not None:
        replayed = _replay(entry, trial, pruner, resolved)
        if replayed is not None:
            return replayed
    sizes: dict[str, int] = {}
    probe = _RecordingProbe(sizes)
    pruning = RungPruning(pruner, trial, resolved.config.federation.rounds, probe)
    history: list[RoundRecord] = []

    def on_round(record: RoundRecord) -> None:
        history.append(record)
        pruning.after_round(record, history)
        if record.round in measure and str(record.round - 1) not in sizes:
            probe.model_bytes(record.round - 1)

    started = time.perf_counter()
    values, failed = None, False
    try:
        outcome = evaluate_selection(runtime, selection, on_round=on_round, probe=probe)
        values = (outcome.val_accuracy, float(outcome.model_bytes), float(outcome.comm_bytes))
    except optuna.TrialPruned:
        pass
    except DivergenceError:  # the study fails such a trial and goes on; so does this
        failed = True
    wall = time.perf_counter() - started
    cache.entries[key] = {
        "history": [record.__dict__ for record in history],
        "sizes": sizes,
        "extra": probe.extra_one_time_bytes,
        "final": values,
        "failed": failed,
        "wall_s": wall,
    }
    cache.runs += 1
    cache.save()
    return TrialCost(values, len(history), wall, failed)


def _replay(
    entry: dict[str, Any], trial: optuna.Trial, pruner: Any | None, resolved: Any
) -> TrialCost | None:
    """The cached trajectory under this study's rungs, or None if it is too short."""
    probe = _CachedProbe(entry["sizes"], entry["extra"])
    pruning = RungPruning(pruner, trial, resolved.config.federation.rounds, probe)
    history: list[RoundRecord] = []
    per_round = entry["wall_s"] / max(len(entry["history"]), 1)
    try:
        for data in entry["history"]:
            history.append(RoundRecord(**data))
            pruning.after_round(history[-1], history)
    except optuna.TrialPruned:
        return TrialCost(None, len(history), per_round * len(history))
    except KeyError:  # a rung the cached run never measured (it had no pruner there)
        return None
    if entry.get("failed"):
        return TrialCost(None, len(history), entry["wall_s"], failed=True)
    if entry["final"] is None:
        return None
    return TrialCost(tuple(entry["final"]), len(history), entry["wall_s"])


def curve(
    resolved: Any,
    runtime: Any,
    cache: TrajectoryCache,
    sampler: optuna.samplers.BaseSampler,
    pruner: Any | None,
    *,
    trials: int,
    budget: float,
    hypervolume: Any,
    measure: tuple[int, ...] = (),
    warm: WarmStart | None = None,
    name: str | None = None,
) -> tuple[list[dict[str, float]], optuna.Study]:
    """Run a study trial by trial; after each, the compute spent and the hypervolume so far.

    Stops after ``trials`` trials or once ``budget`` client-rounds are spent.
    ``warm``: an earlier study's front is enqueued first, as ``[search]
    warm_start`` does (its re-evaluation is charged like any trial); a sampler
    that learns from history must already be built to see its trials
    (``sampler_factory``). Returns the rows and the study.
    """
    fraction, clients = resolved.config.federation.fraction, resolved.config.federation.num_clients
    per_round = max(1, round(fraction * clients))
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"], sampler=sampler, study_name=name
    )
    if warm is not None:
        enqueue_front(study, warm)
    points: list[tuple[float, float, float]] = []
    spent, wall, rows = 0, 0.0, []
    for number in range(trials):
        if spent >= budget:
            break
        trial = study.ask()
        cost = evaluate(runtime, resolved, cache, trial, pruner, measure)
        if cost.failed:
            study.tell(trial, state=TrialState.FAIL)
        elif cost.values is None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, list(cost.values))
            points.append(cost.values)
        spent += cost.rounds * per_round
        wall += cost.wall_s
        rows.append(
            {"trial": number + 1, "client_rounds": spent, "wall_s": wall, "hv": hypervolume(points)}
        )
    return rows, study


def hv_at(rows: list[dict[str, float]], client_rounds: float) -> float:
    """Hypervolume reached within ``client_rounds`` (0 before the first trial)."""
    reached = [row["hv"] for row in rows if row["client_rounds"] <= client_rounds]
    return reached[-1] if reached else 0.0


def rounds_to_reach(curves: list[list[dict[str, float]]], target: float) -> float:
    """Least client-rounds at which the mean over seeds of the hypervolume reaches ``target``."""
    budgets = sorted({row["client_rounds"] for rows in curves for row in rows})
    for budget in budgets:
        if np.mean([hv_at(rows, budget) for rows in curves]) >= target:
            return budget
    return math.inf


MNIST_STUDY = """
name = "search-compute-mnist"
seed = 0
output_dir = "{output}"

[dataset]
name = "npz"
val_fraction = 0.15
params = {{ path = "{train}", test_path = "{test}" }}

[federation]
num_clients = 10
rounds = 10
fraction = 0.5
local_epochs = 1
batch_size = 32
learning_rate = 0.1
partition = {{ name = "dirichlet", params = {{ alpha = 0.5 }} }}

[teacher]
architecture = {{ name = "mlp", params = {{ widths = [128] }} }}
rounds = 20

[search]
space = "{space}"
sampler = {{ name = "{sampler}" }}

[search.slots]
architecture = ["mlp", "cnn"]

[search.dimensions]
"distill.soft_target.temperature" = {{ choices = [1.0, 2.0, 4.0, 8.0] }}
"distill.soft_target.alpha" = {{ choices = [0.3, 0.5, 0.7] }}
"""
"""The harder problem: a fixed 6,000-example MNIST training subset (1,000 test), 10
clients with a Dirichlet(0.5) label skew, 10 rounds; 28x28 inputs make models and
traffic ~12x larger than on 8x8 digits, and the skew makes accuracy harder to reach."""
MNIST_REFERENCE = np.array([1.0, math.log10(2 * 1024 * 1024), math.log10(1024**3)])
"""(1 - accuracy, log10 model bytes, log10 comm bytes), fixed before measuring."""


def mnist_subset(folder: Path, data: Path) -> tuple[Path, Path]:
    """Write the fixed MNIST subset (first 6,000 training, first 1,000 test images) as npz."""
    from fedsearch_builtins.image_datasets import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx

    paths = []
    for split, count in (("train", 6000), ("t10k", 1000)):
        images = read_idx(data / f"{split}-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC)[:count]
        labels = read_idx(data / f"{split}-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC)[:count]
        path = folder / f"mnist_{split}_{count}.npz"
        x = (images.astype(np.float32) / 255.0 - 0.1307) / 0.3081
        np.savez(path, x=x[:, None], y=labels.astype(np.int64))
        paths.append(path)
    return paths[0], paths[1]
