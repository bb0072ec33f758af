"""The study note optuna-dashboard shows: what the study searches and how it simulates."""

from __future__ import annotations

import json

import optuna

from fedsearch.config import ComponentRef
from fedsearch.search._resolve import ResolvedStudy


def study_note(study: ResolvedStudy) -> str:
    """Markdown describing the study's configuration."""
    config = study.config
    federation = config.federation
    lines = [
        f"# fedsearch study `{study.study_name}`",
        "",
        f"Study file `{study.source}`, seed {config.seed}, fingerprint `{study.fingerprint()}`.",
        "",
        "## Objectives",
        "",
        *(
            f"- `{name}` ({direction})"
            for name, direction in zip(study.metric_names, study.directions, strict=True)
        ),
        "",
        "## Data and federation",
        "",
        f"- dataset `{config.dataset.name}`{_params(config.dataset.params)}, "
        f"validation fraction {config.dataset.val_fraction}",
        f"- {federation.num_clients} clients, {federation.rounds} rounds, "
        f"fraction {federation.fraction} per round, {federation.local_epochs} local epochs, "
        f"batch {federation.batch_size}, learning rate {federation.learning_rate}",
        f"- partition `{federation.partition.name}`{_params(federation.partition.params)}, "
        f"strategy `{federation.strategy.name}`, codecs `{_pipeline(federation.downlink_codec)}` "
        f"down / `{_pipeline(federation.uplink_codec)}` up",
    ]
    if config.teacher is not None:
        teacher = config.teacher
        origin = (
            f"loaded from the pretrained file `{teacher.pretrained}`"
            if teacher.pretrained is not None
            else f"{teacher.rounds or federation.rounds} rounds"
        )
        lines.append(
            f"- teacher `{teacher.architecture.name}`{_params(teacher.architecture.params)}, "
            + origin
        )
    lines += [
        "",
        "## Search",
        "",
        f"- sampler `{config.search.sampler.name}`{_params(config.search.sampler.params)}, "
        f"budget {config.search.n_trials} finished trials",
        "",
        "| dimension | when | values |",
        "| --- | --- | --- |",
        *(f"| `{name}` | {when} | {values} |" for name, when, values in study.space.rows()),
        "",
        "Each finished trial's note shows its objectives with units and against the teacher, "
        "its learning curve, per-layer bits and sparsity, and the command that exports it. "
        "Its artifacts are `trial-N.fsz`, the compressed model (a fedsearch artifact, whose "
        "length is the model size objective), and `history-N.json`, every round's record. "
        "Sizes are SI: 1 kB = 1000 bytes.",
    ]
    return "\n".join(lines)


def save_study_note(study: ResolvedStudy, optuna_study: optuna.Study) -> None:
    """Store the note for optuna-dashboard (skipped when optuna-dashboard is not installed)."""
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return
    save_note(optuna_study, study_note(study))


def _pipeline(codec: ComponentRef | list[ComponentRef]) -> str:
    """``topk+qsgd`` for a pipeline, the name for a single codec."""
    return "+".join(ref.name for ref in (codec if isinstance(codec, list) else [codec]))


def _params(params: dict) -> str:
    return f" `{json.dumps(params, sort_keys=True)}`" if params else ""
