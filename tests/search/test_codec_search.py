"""Codec pipelines as search dimensions, and the bytes they put on the wire."""

from __future__ import annotations

import optuna
import pytest

from fedsearch import ConfigError, evaluate_selection, resolve_study
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from fedsearch.trial._trial_attributes import trial_attributes
from tests._studies import tiny_space, tiny_study, write_study

CODEC_SPACE = tiny_space(
    slots={
        "uplink_codec": ["float32", "error_feedback+topk", "topk+qsgd"],
        "downlink_codec": ["float32", "bfloat16"],
    },
    dimensions={
        "uplink_codec.topk.fraction": {"choices": [0.05, 0.2]},
        "uplink_codec.qsgd.levels": {"low": 2, "high": 8},
    },
)


@pytest.fixture(scope="module")
def codec_study(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("codecs")
    return resolve_study(write_study(folder, space=CODEC_SPACE), registry)


def test_codec_knobs_are_sampled_only_with_their_pipeline(codec_study):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        selection = codec_study.space.suggest(trial)
        study.tell(trial, 0.0)
        params = study.trials[-1].params
        pipeline = params["uplink_codec"]
        seen.add(pipeline)
        assert ("uplink_codec.topk.fraction" in params) == ("topk" in pipeline)
        assert ("uplink_codec.qsgd.levels" in params) == ("qsgd" in pipeline)
        stages = selection.codecs["uplink_codec"]
        assert "+".join(stage.name for stage in stages) == pipeline
        if "topk" in pipeline:
            topk = next(stage for stage in stages if stage.name == "topk")
            assert topk.params == {"fraction": params["uplink_codec.topk.fraction"]}
        assert [s.name for s in selection.codecs["downlink_codec"]] == [params["downlink_codec"]]
    assert seen == {"float32", "error_feedback+topk", "topk+qsgd"}
    rows = {name: values for name, _, values in codec_study.space.rows()}
    assert rows["uplink_codec.qsgd.levels"] == "[2, 8]"
    assert rows["uplink_codec.qsgd.norm"] == "fixed 'l2'"


def test_comm_bytes_follow_the_chosen_codecs(codec_study):
    runtime = prepare_runtime(codec_study)
    base = Selection(ComponentChoice("mlp", {"depth": 1, "widths": [16]}), {})

    def with_codecs(up, down):
        codecs = {
            "uplink_codec": tuple(ComponentChoice(n, p) for n, p in up),
            "downlink_codec": tuple(ComponentChoice(n, p) for n, p in down),
        }
        return Selection(base.architecture, {}, codecs)

    dense = evaluate_selection(runtime, with_codecs([("float32", {})], [("float32", {})]))
    sparse_selection = with_codecs(
        [("error_feedback", {}), ("topk", {"fraction": 0.05}), ("qsgd", {"levels": 4})],
        [("bfloat16", {})],
    )
    sparse = evaluate_selection(runtime, sparse_selection)
    history = sparse.simulation.history
    assert sparse.comm_bytes == sum(r.uplink_bytes + r.downlink_bytes for r in history)
    assert sparse.simulation.uplink_bytes * 20 < dense.simulation.uplink_bytes
    assert sparse.simulation.downlink_bytes * 2 == pytest.approx(
        dense.simulation.downlink_bytes, rel=0.01
    )
    attributes = trial_attributes(runtime, sparse_selection, sparse)
    assert [stage["name"] for stage in attributes["codecs"]["uplink_codec"]] == [
        "error_feedback",
        "topk",
        "qsgd",
    ]
    assert attributes["selection"]["uplink_codec"][1]["params"] == {"fraction": 0.05}
    assert attributes["plugins"]["uplink_codec.topk"].startswith("builtin.codecs")
    assert all("uplink_bytes" in record for record in attributes["history"])


def test_without_codec_slots_the_study_codecs_apply(tmp_path, registry):
    downlink_codec = [{"name": "topk", "params": {"fraction": 0.5}}]
    study = tiny_study(federation={"downlink": "delta", "downlink_codec": downlink_codec})
    resolved = resolve_study(write_study(tmp_path, study), registry)
    assert resolved.downlink_codec.name == "topk"
    runtime = prepare_runtime(resolved)
    pipelines = runtime.codec_pipelines(None)
    assert pipelines["downlink_codec"].as_list() == [{"name": "topk", "params": {"fraction": 0.5}}]
    assert pipelines["uplink_codec"].name == "float32"


@pytest.mark.parametrize(
    ("slots", "fragment"),
    [
        ({"uplink_codec": ["none"]}, "cannot be 'none'"),
        ({"downlink_codec": ["error_feedback+topk"]}, "per-client state"),
        ({"uplink_codec": ["sign+topk"]}, "cannot be followed"),
    ],
)
def test_bad_codec_candidates_are_config_errors(tmp_path, registry, slots, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve_study(write_study(tmp_path, space=tiny_space(slots=slots)), registry)


def test_pareto_rows_describe_codec_pipelines():
    from fedsearch.search import describe_selection

    selection = {
        "architecture": {"name": "mlp", "params": {"depth": 1}},
        "uplink_codec": [
            {"name": "error_feedback", "params": {}},
            {"name": "topk", "params": {"fraction": 0.01}},
        ],
    }
    assert describe_selection(selection) == (
        "mlp(depth=1) + uplink_codec=[error_feedback() > topk(fraction=0.01)]"
    )
