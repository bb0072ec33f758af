"""Conditional and per-layer dimensions: stored trial params hold only relevant knobs."""

from __future__ import annotations

import optuna
import pytest

from fedsearch import get_registry, resolve_study
from fedsearch.search import Selection
from tests.conftest import REPO, TINY_STUDY, write_tiny_study

DEFAULT_SPACE = (REPO / "search_spaces" / "default.toml").read_text()


def relevant_params(selection: Selection, space) -> set[str]:
    """The Optuna params a trial with this selection may hold: chosen components' knobs only."""
    names = {slot for slot, candidates in space.slots.items() if len(candidates) > 1}
    chosen = {"architecture": selection.architecture, **selection.compressors}
    for slot, choice in chosen.items():
        for dim in space.dimensions[slot, choice.name]:
            if dim.distribution is None:
                continue
            if dim.per_layer is None:
                names.add(dim.name)
            else:
                names |= {dim.layer_name(i) for i in range(len(choice.params[dim.field]))}
    return names


@pytest.fixture(scope="module")
def default_space(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space")
    study = resolve_study(write_tiny_study(folder, TINY_STUDY, DEFAULT_SPACE), get_registry())
    return study.space


@pytest.mark.parametrize("sampler", ["nsga2", "evolution", "random"])
def test_stored_trials_never_hold_irrelevant_knobs(tmp_path, default_space, sampler):
    registry = get_registry()
    storage = f"sqlite:///{tmp_path / 'space.db'}"
    study = optuna.create_study(
        storage=storage,
        study_name="space",
        directions=["maximize", "minimize", "minimize"],
        sampler=registry.create("sampler", sampler, {}).create(seed=0),
    )
    selections = {}
    trials = 30
    for _ in range(trials):
        trial = study.ask()
        selection = default_space.suggest(trial)
        selections[trial.number] = selection
        # a fake but consistent objective: bigger models are more accurate
        size = sum(len(str(p)) for p in selection.architecture.params.values())
        study.tell(trial, [size / 100, float(size), float(len(selection.compressors))])
    stored = optuna.load_study(study_name="space", storage=storage).trials
    families, depths = set(), set()
    for trial in stored:
        selection = selections[trial.number]
        assert set(trial.params) == relevant_params(selection, default_space), trial.params
        architecture = selection.architecture
        families.add(architecture.name)
        if architecture.name == "mlp":
            depth = trial.params["architecture.mlp.depth"]
            depths.add(depth)
            assert architecture.params["widths"] == [
                trial.params[f"architecture.mlp.widths.{i}"] for i in range(depth)
            ]
        if "quantize.uniform.bits" in trial.params:
            assert trial.params["quantize"] == "uniform"
    assert len(families) >= 2


def test_validate_shows_per_layer_conditions(default_space):
    rows = {name: (when, values) for name, when, values in default_space.rows()}
    assert rows["architecture.mlp.widths.<i>"] == (
        "architecture == 'mlp' and i < architecture.mlp.depth",
        "choices 16, 32, 64, 128",
    )
    assert rows["quantize.uniform.bits"][0] == "quantize == 'uniform'"
    assert rows["architecture.dscnn.width_multiplier"] == (
        "architecture == 'dscnn'",
        "choices 0.125, 0.25, 0.5",
    )


def test_per_layer_override_is_checked_per_layer(tmp_path):
    space = DEFAULT_SPACE.replace(
        '"architecture.mlp.widths" = { choices = [16, 32, 64, 128] }',
        '"architecture.mlp.widths" = { choices = [16, 0] }',
    )
    from fedsearch import ConfigError

    with pytest.raises(ConfigError, match=r"dimensions\.architecture\.mlp.*greater than or equal"):
        resolve_study(write_tiny_study(tmp_path, TINY_STUDY, space), get_registry())


def test_unknown_family_suggests_the_closest(tmp_path):
    from fedsearch import ConfigError

    space = DEFAULT_SPACE.replace('"dscnn"]', '"dsccn"]')
    with pytest.raises(ConfigError, match=r"did you mean 'dscnn'"):
        resolve_study(write_tiny_study(tmp_path, TINY_STUDY, space), get_registry())


def test_a_study_may_narrow_the_slots_of_a_shared_space_file(tmp_path):
    study_text = TINY_STUDY + '\n[search.slots]\narchitecture = ["mlp"]\n'
    space = resolve_study(write_tiny_study(tmp_path, study_text, DEFAULT_SPACE), get_registry())
    assert space.space.slots["architecture"] == ["mlp"]  # cnn/dscnn overrides are unused
