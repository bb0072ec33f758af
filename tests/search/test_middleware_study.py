"""Middleware configured in the study file, validated before the study exists, used by trials."""

from __future__ import annotations

import pytest

from fedsearch import ConfigError, evaluate_selection, resolve_study
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from tests.conftest import TINY_SPACE, TINY_STUDY, write_tiny_study

MLP = Selection(ComponentChoice("mlp", {"depth": 1, "widths": [16]}), {})


def study_with(tmp_path, federation_lines: str, space: str = TINY_SPACE):
    text = TINY_STUDY.replace("learning_rate = 0.3\n", f"learning_rate = 0.3\n{federation_lines}\n")
    return write_tiny_study(tmp_path, text, space)


def test_the_study_lists_middleware_in_order(tmp_path, registry):
    lines = (
        'middleware = [{{ name = "scale_update", params = {{ factor = 2.0 }} }}, '
        '{{ name = "clip_update", params = {{ max_norm = 0.5 }} }}]'
    )
    study = resolve_study(study_with(tmp_path, lines), registry)
    assert [(spec.name, spec.params.model_dump()) for spec in study.middleware] == [
        ("scale_update", {"factor": 2.0}),
        ("clip_update", {"max_norm": 0.5}),
    ]


def test_an_unknown_middleware_is_refused_naming_the_field(tmp_path, registry):
    path = study_with(tmp_path, 'middleware = [{{ name = "clip" }}]')
    with pytest.raises(ConfigError, match=r"federation.middleware\[0\].*clip_update"):
        resolve_study(path, registry)


def test_explicit_vectorized_with_a_compressor_that_cannot_be_is_refused(tmp_path, registry):
    space = TINY_SPACE.replace('distill = ["none", "soft_target"]', 'distill = ["none", "fitnets"]')
    path = study_with(tmp_path, 'execution = "vectorized"', space)
    with pytest.raises(ConfigError, match=r"fitnets.*vmap"):
        resolve_study(path, registry)


def test_clipping_every_update_to_almost_nothing_stops_learning(tmp_path, registry):
    plain = prepare_runtime(resolve_study(study_with(tmp_path / "plain", ""), registry))
    lines = 'middleware = [{{ name = "clip_update", params = {{ max_norm = 1e-6 }} }}]'
    clipped = prepare_runtime(resolve_study(study_with(tmp_path / "clipped", lines), registry))
    learned, frozen = evaluate_selection(plain, MLP), evaluate_selection(clipped, MLP)
    assert learned.val_accuracy > 0.5
    assert frozen.val_accuracy < 0.3  # the global model barely moved from its random start
    assert frozen.comm_bytes == learned.comm_bytes  # float32 payloads: same sizes
