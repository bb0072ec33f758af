"""Middleware configured in the study file, validated before the study exists, used by trials."""

from __future__ import annotations

import pytest

from fedsearch import ConfigError, evaluate_selection, resolve_study
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from tests._studies import tiny_space, tiny_study, write_study

MLP = Selection(ComponentChoice("mlp", {"depth": 1, "widths": [16]}), {})


def study_with(folder, space=None, **federation):
    return write_study(folder, tiny_study(federation=federation), space or tiny_space())


def test_the_study_lists_middleware_in_order(tmp_path, registry):
    middleware = [
        {"name": "scale_update", "params": {"factor": 2.0}},
        {"name": "clip_update", "params": {"max_norm": 0.5}},
    ]
    study = resolve_study(study_with(tmp_path, middleware=middleware), registry)
    assert [(spec.name, spec.params.model_dump()) for spec in study.middleware] == [
        ("scale_update", {"factor": 2.0}),
        ("clip_update", {"max_norm": 0.5}),
    ]


def test_an_unknown_middleware_is_refused_naming_the_field(tmp_path, registry):
    path = study_with(tmp_path, middleware=[{"name": "clip"}])
    with pytest.raises(ConfigError, match=r"federation.middleware\[0\].*clip_update"):
        resolve_study(path, registry)


def test_explicit_vectorized_with_a_compressor_that_cannot_be_is_refused(tmp_path, registry):
    space = tiny_space(slots={"distill": ["none", "fitnets"]})
    path = study_with(tmp_path, space, execution="vectorized")
    with pytest.raises(ConfigError, match=r"fitnets.*vmap"):
        resolve_study(path, registry)


def test_clipping_every_update_to_almost_nothing_stops_learning(tmp_path, registry):
    plain = prepare_runtime(resolve_study(study_with(tmp_path / "plain"), registry))
    clip = [{"name": "clip_update", "params": {"max_norm": 1e-6}}]
    clipped = prepare_runtime(
        resolve_study(study_with(tmp_path / "clipped", middleware=clip), registry)
    )
    learned, frozen = evaluate_selection(plain, MLP), evaluate_selection(clipped, MLP)
    assert learned.val_accuracy > 0.5
    assert frozen.val_accuracy < 0.3  # the global model barely moved from its random start
    assert frozen.comm_bytes == learned.comm_bytes  # float32 payloads: same sizes
