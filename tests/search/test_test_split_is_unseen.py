"""The test split cannot influence the search: poisoning it changes only test accuracy."""

from __future__ import annotations

import numpy as np
import torch
from fedsearch_builtins.datasets import Digits
from optuna.trial import TrialState

from fedsearch import (
    DatasetSplits,
    Registrar,
    get_plugin_manager,
    get_registry,
    hookimpl,
    resolve_study,
    run_study,
)
from tests.conftest import TINY_STUDY, write_tiny_study

POISON_SEED = 1234


class PoisonedDigits(Digits):
    """The digits with the test labels permuted and the test inputs replaced by noise."""

    name = "poisoned_digits"

    def load(self) -> DatasetSplits:
        """The digits' splits, test split poisoned (with a local generator: no global RNG)."""
        splits = super().load()
        rng = np.random.default_rng(POISON_SEED)
        noise = rng.random(tuple(splits.test_inputs.shape), dtype=np.float32)
        labels = splits.test_labels[torch.from_numpy(rng.permutation(len(splits.test_labels)))]
        assert not torch.equal(labels, splits.test_labels)
        return DatasetSplits(
            train_inputs=splits.train_inputs,
            train_labels=splits.train_labels,
            test_inputs=torch.from_numpy(noise),
            test_labels=labels,
            num_classes=splits.num_classes,
        )


class PoisonPlugin:
    @hookimpl
    def fedsearch_register_components(self, register: Registrar) -> None:
        register.dataset(PoisonedDigits)


def _run(folder, dataset: str):
    # NSGA-II with a population of 2: trials 2 and 3 are bred from the values of trials 0 and 1
    study_text = (
        TINY_STUDY.replace('name = "digits"', f'name = "{dataset}"')
        .replace("n_trials = 3", "n_trials = 4")
        .replace(
            '{{ name = "random" }}', '{{ name = "nsga2", params = {{ population_size = 2 }} }}'
        )
    )
    registry = get_registry(get_plugin_manager(extra_plugins=[PoisonPlugin()]))
    study = resolve_study(write_tiny_study(folder, study_text), registry)
    assert study.config.dataset.name == dataset
    optuna_study = run_study(study)
    return optuna_study, optuna_study.get_trials(states=(TrialState.COMPLETE,))


def test_a_poisoned_test_split_gives_the_same_search(tmp_path):
    clean_study, clean = _run(tmp_path / "clean", "digits")
    poisoned_study, poisoned = _run(tmp_path / "poisoned", "poisoned_digits")
    assert len(clean) == len(poisoned) == 4
    assert len({str(trial.params) for trial in clean}) > 1  # the search explored
    for ours, theirs in zip(clean, poisoned, strict=True):
        assert ours.params == theirs.params
        assert ours.values == theirs.values
        assert ours.user_attrs["val_accuracy_history"] == theirs.user_attrs["val_accuracy_history"]
    teacher, poisoned_teacher = (
        clean_study.user_attrs["teacher"],
        poisoned_study.user_attrs["teacher"],
    )
    assert teacher["val_accuracy"] == poisoned_teacher["val_accuracy"]
    assert teacher["training_bytes"] == poisoned_teacher["training_bytes"]
    # the poison took effect where it may: test accuracy falls to chance
    assert all(trial.user_attrs["test_accuracy"] > 0.5 for trial in clean)
    assert all(trial.user_attrs["test_accuracy"] < 0.3 for trial in poisoned)
    assert poisoned_teacher["test_accuracy"] < 0.3 < teacher["test_accuracy"]
