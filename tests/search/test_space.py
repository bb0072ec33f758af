"""Search spaces: resolved against plugins, conditional, with helpful errors."""

from __future__ import annotations

import optuna
import pytest

from fedsearch import ConfigError, resolve_study
from tests._studies import DROP, tiny_space, tiny_study, write_study


def resolved_space(tmp_path, registry, space=None, study=None):
    return resolve_study(write_study(tmp_path, study, space), registry).space


def test_only_the_chosen_components_params_are_sampled(tmp_path, registry):
    space = resolved_space(tmp_path, registry)
    study = optuna.create_study(
        directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for _ in range(40):
        trial = study.ask()
        selection = space.suggest(trial)
        study.tell(trial, 0.0)
        params = study.trials[-1].params
        for slot in ("prune", "quantize", "distill"):
            chosen = params[slot]
            owned = {name for name in params if name.startswith(f"{slot}.")}
            expected_prefix = f"{slot}.{chosen}."
            assert all(name.startswith(expected_prefix) for name in owned), (slot, params)
            if chosen == "none":
                assert owned == set() and slot not in selection.compressors
        assert "architecture" not in params  # a single candidate is not a dimension
        assert params["architecture.mlp.widths.0"] in (16, 32)
        assert "architecture.mlp.widths.1" not in params  # depth is fixed at 1
        assert "architecture.mlp.depth" not in params  # fixed value
        assert selection.architecture.params["depth"] == 1
    seen = {trial.params["quantize"] for trial in study.trials}
    assert seen == {"none", "uniform"}


def test_undeclared_dimensions_use_the_plugin_defaults(tmp_path, registry):
    space = resolved_space(tmp_path, registry)
    rows = {name: values for name, _, values in space.rows()}
    assert rows["prune.magnitude.sparsity"] == "[0.0, 0.95] step 0.05"
    assert rows["distill.soft_target.temperature"] == "[1.0, 20.0] log"
    assert rows["prune.magnitude.start_fraction"] == "fixed 0.5"


def test_unknown_dimension_suggests_the_closest_name(tmp_path, registry):
    space = tiny_space(dimensions={"prune.magnitude.sparsty": {"low": 0.1, "high": 0.5}})
    with pytest.raises(ConfigError, match=r"did you mean 'prune\.magnitude\.sparsity'"):
        resolved_space(tmp_path, registry, space)


def test_component_in_the_wrong_slot(tmp_path, registry):
    space = tiny_space(slots={"prune": ["uniform"]})
    with pytest.raises(
        ConfigError, match=r"'uniform' is a quantize compressor; list it under slots\.quantize"
    ):
        resolved_space(tmp_path, registry, space)


def test_unknown_slot(tmp_path, registry):
    space = tiny_space(slots={"prune": DROP, "prnue": ["none", "magnitude"]})
    with pytest.raises(ConfigError, match=r"slots\.prnue: unknown slot; did you mean 'prune'"):
        resolved_space(tmp_path, registry, space)


def test_distillation_needs_a_teacher(tmp_path, registry):
    study = tiny_study(teacher=DROP)
    with pytest.raises(ConfigError, match="add a \\[teacher\\] table"):
        resolved_space(tmp_path, registry, study=study)


def test_study_inline_dimensions_override_the_space_file(tmp_path, registry):
    study = tiny_study(search={"dimensions": {"quantize.uniform.bits": {"value": 6}}})
    space = resolved_space(tmp_path, registry, study=study)
    rows = {name: values for name, _, values in space.rows()}
    assert rows["quantize.uniform.bits"] == "fixed 6"
