"""One trial of a heterogeneous study: tier recipes, sub-model training, one artifact per tier.

The objectives of a tiered trial are:

- ``val_accuracy``: the client-share-weighted mean of the tiers' validation
  accuracies, each measured on the model decoded from that tier's artifact;
- ``model_bytes``: the length of the trial's artifact, which is the artifact of
  the tier with the largest budget (``fedsearch export --trial N``; each tier's
  own with ``--tier NAME``);
- ``comm_bytes``: every payload that crossed the channel (each client's slice
  down, its update up);
- extra objectives: each objective's ``measure_trial`` on the main tier's
  artifact and model and the trial's attributes (``round_time`` reads the
  simulation's recorded ``round_time_s``).

Constraints: ``tier_budget`` (the largest ``model_bytes / budget_bytes - 1``
over the tiers), ``min_accuracy`` (the floor minus the worst tier's validation
accuracy), and the study's ``max_model_bytes`` / ``max_comm_bytes`` if set.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore

from fedsearch.components import Architecture
from fedsearch.federated import RoundCallback, TieredFederation, TieredResult, TieredRun
from fedsearch.search._describe import describe_selection
from fedsearch.search._space import Selection
from fedsearch.trial._tier_models import TierScore, score_tiers, suggest_recipes, tier_models
from fedsearch.trial._upload import upload_bytes

TIER_BUDGET = "tier_budget"
"""The constraint every tier's artifact must meet: at most its tier's ``budget_bytes``."""


def run_tiered_trial(
    runtime: Any,
    trial: optuna.Trial,
    selection: Selection,
    store: FileSystemArtifactStore,
    on_round: RoundCallback | None,
) -> tuple[float, ...]:
    """Evaluate ``selection`` as the global model of a tiered federation; record everything.

    Args:
        runtime: The study's ``StudyRuntime``.
        trial: The Optuna trial (recipes are suggested on it; attributes set on it).
        selection: The suggested global architecture (compressor slots are off).
        store: Where every tier's artifact is uploaded.
        on_round: Progress and early-abort callback.
    """
    started = time.perf_counter()
    study, data = runtime.study, runtime.data
    config = study.config
    tiers = config.tiers
    recipes = suggest_recipes(trial, tiers)
    trial.set_user_attr("tier_recipes", [recipe.__dict__ for recipe in recipes])
    registry = study.registry
    architecture = registry.create(
        "architecture", selection.architecture.name, selection.architecture.params
    )
    assert isinstance(architecture, Architecture)
    torch.manual_seed(config.seed)
    global_model = architecture.build(data.input_shape, data.num_classes)
    built = tier_models(registry, architecture, recipes, data)
    pipelines = runtime.codec_pipelines(selection)
    run = TieredRun(
        data=data,
        federation=config.federation,
        tiers=tiers,
        downlink_codec=pipelines["downlink_codec"].build(),
        uplink_codec=pipelines["uplink_codec"].build(),
        seed=config.seed,
    )
    federation = TieredFederation(global_model, [model for _, model in built], run)
    result = federation.fit(on_round)
    scores = score_tiers(registry, federation, built, recipes, result.weights)
    main = max(range(len(scores)), key=lambda i: (scores[i].tier.budget_bytes, i))
    ids = [_upload(store, trial, score.artifact, score.tier.name) for score in scores]
    attributes = tier_attributes(runtime, selection, result, scores, ids)
    for key, value in attributes.items():
        trial.set_user_attr(key, value)
    comm_bytes = result.downlink_bytes + result.uplink_bytes
    constraints = tier_constraints(config.search.constraints, scores, comm_bytes, main)
    constraints["min_accuracy"] = runtime.accuracy_floor.value - min(
        score.val_accuracy for score in scores
    )
    for name, value in constraints.items():
        trial.set_constraint(name, value)
    trial.set_user_attr("constraints", constraints)
    trial.set_user_attr("feasible", all(value <= 0 for value in constraints.values()))
    trial.set_user_attr("artifact_id", ids[main])
    artifact, model = scores[main].artifact, scores[main].model.eval()
    extras = [
        float(spec.build().measure_trial(artifact, model, data.input_shape, attributes))
        for spec in study.objectives
    ]
    trial.set_user_attr("wall_time_s", round(time.perf_counter() - started, 3))
    weighted = sum(score.tier.share * score.val_accuracy for score in scores)
    return (weighted, float(len(scores[main].artifact)), float(comm_bytes), *extras)


def tier_constraints(
    limits: Any, scores: list[TierScore], comm_bytes: int, main: int
) -> dict[str, float]:
    """Per-tier budgets (the worst overshoot) and the study's own byte limits."""
    values = {
        TIER_BUDGET: max(len(score.artifact) / score.tier.budget_bytes - 1.0 for score in scores)
    }
    if limits.max_model_bytes is not None:
        values["max_model_bytes"] = len(scores[main].artifact) / limits.max_model_bytes - 1.0
    if limits.max_comm_bytes is not None:
        values["max_comm_bytes"] = comm_bytes / limits.max_comm_bytes - 1.0
    return values


def tier_attributes(
    runtime: Any,
    selection: Selection,
    result: TieredResult,
    scores: list[TierScore],
    artifact_ids: list[str],
) -> dict[str, Any]:
    """The readable user attributes of a finished tiered trial."""
    counts = [0] * len(scores)
    for tier in result.tier_of:
        counts[tier] += 1
    slots = selection.as_dict()
    return {
        "tiers": [
            {**score.as_dict(artifact_id), "clients": counts[index]}
            for index, (score, artifact_id) in enumerate(zip(scores, artifact_ids, strict=True))
        ],
        "test_accuracy": sum(score.tier.share * score.test_accuracy for score in scores),
        "round_time_s": result.round_time_s,
        "round_seconds": [event.seconds for event in result.events],
        "rounds": [event.__dict__ for event in result.events],
        "val_accuracy_history": [record.val_accuracy for record in result.history],
        "history": [record.__dict__ for record in result.history],
        "uplink_bytes": result.uplink_bytes,
        "downlink_bytes": result.downlink_bytes,
        "one_time_bytes": 0,
        "slicing": runtime.study.config.tiers.slicing,
        "selection": slots,
        "summary": describe_selection(slots),
        "partition": {
            "name": runtime.study.partitioner.name,
            **runtime.data.partition_summary(),
        },
    }


def _upload(store: FileSystemArtifactStore, trial: optuna.Trial, artifact: bytes, tier: str) -> str:
    filename = f"trial-{trial.number}-{tier}.fsz"
    return upload_bytes(store, trial, artifact, filename, "application/octet-stream")
