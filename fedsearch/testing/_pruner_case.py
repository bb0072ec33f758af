"""``PrunerTestCase``: the conformance suite every pruner's tests subclass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from fedsearch._errors import ConfigError
from fedsearch.components import Pruner, RungPoint
from fedsearch.host import ComponentRegistry, get_registry
from fedsearch.search import resolve_study
from fedsearch.study import run_study
from fedsearch.testing._declared import assert_declares_name_and_params
from fedsearch.trial._rungs import RUNG_ATTR_PREFIX

SPACE = """\
[slots]
architecture = ["mlp"]
prune = ["none", "magnitude"]
quantize = ["none", "uniform"]

[dimensions]
"architecture.mlp.depth" = { value = 1 }
"architecture.mlp.widths" = { choices = [16, 32] }
"quantize.uniform.bits" = { choices = [4, 8] }
"""


def toml_value(value: Any) -> str:
    """A param as TOML (JSON's scalars and arrays are TOML; tables become inline tables)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def registry_with(cls: type[Pruner]) -> ComponentRegistry:
    """The installed components, with ``cls`` standing for its name (added when unknown)."""
    registry = get_registry()
    try:
        registry.get(cls.kind, cls.name)
    except ConfigError:
        registry.add(cls, plugin="fedsearch.testing", plugin_version=None)
        return registry
    return registry.replaced(cls)


class PrunerTestCase:
    """Contract tests for a :class:`~fedsearch.Pruner`; subclass it in your tests.

    Set ``pruner_class`` and ``params`` that make it prune in a small study;
    pytest collects the inherited ``test_*`` methods. Once per subclass they
    run a real tiny study with the pruner (scikit-learn digits, ``n_trials``
    random trials of an MLP with optional pruning and quantization, 4
    clients, ``num_rounds`` rounds) and check: the rungs are increasing rounds
    below the last; the study finishes its budget with no failed trial and at
    least one complete and one pruned (``optuna.TrialPruned``) trial; a pruned
    trial stopped at one of the rungs, never before the first, and recorded
    its rung, round and one-line reason in its user attributes; a complete
    trial trained every round; and the pruner keeps no state: a fresh
    instance, given the points the study stored, decides exactly as the
    study's did at every rung of every trial.

    Example::

        from fedsearch.testing import PrunerTestCase
        from my_plugin import MedianRule

        class TestMedianRule(PrunerTestCase):
            pruner_class = MedianRule
            params = {"min_trials": 2}

    Attributes:
        pruner_class: The pruner under test (need not be installed).
        params: Its params; choose ones that prune among ``n_trials`` trials.
        n_trials: Trials of the study.
        num_rounds: Rounds of every trial.
    """

    pruner_class: ClassVar[type[Pruner]]
    params: ClassVar[dict[str, Any]] = {}
    n_trials: ClassVar[int] = 6
    num_rounds: ClassVar[int] = 3

    # --- helpers (override to adapt) -------------------------------------------------

    def make_pruner(self) -> Pruner:
        """A fresh pruner, with its params validated by its ``Params`` model."""
        return self.pruner_class(self.pruner_class.Params(**self.params))

    def study_file(self, folder: Path) -> Path:
        """The tiny study with this pruner, and its search space, written into ``folder``."""
        (folder / "space.toml").write_text(SPACE)
        pruner = {"name": self.pruner_class.name, "params": dict(self.params)}
        study = f"""\
name = "pruner_conformance"
seed = 0
output_dir = {json.dumps((folder / "runs").as_posix())}

[dataset]
name = "digits"
val_fraction = 0.2

[federation]
num_clients = 4
rounds = {self.num_rounds}
fraction = 0.5
batch_size = 32
learning_rate = 0.3

[search]
space = "space.toml"
n_trials = {self.n_trials}
sampler = {{ name = "random" }}
pruner = {toml_value(pruner)}
"""
        path = folder / "study.toml"
        path.write_text(study)
        return path

    @pytest.fixture(scope="class")
    @classmethod
    def trials(cls, tmp_path_factory: pytest.TempPathFactory) -> list[FrozenTrial]:
        """The trials of one real tiny study with the pruner (run once per subclass)."""
        folder = tmp_path_factory.mktemp(f"pruner-{cls.pruner_class.name}")
        resolved = resolve_study(cls().study_file(folder), registry_with(cls.pruner_class))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return run_study(resolved).get_trials()

    def rungs(self) -> tuple[int, ...]:
        """The rungs of the study's trials."""
        return self.make_pruner().rungs(self.num_rounds)

    # --- the contract ----------------------------------------------------------------

    def test_declares_name_and_params(self) -> None:
        """A non-empty name and a ComponentParams model accepting the params."""
        cls = self.pruner_class
        assert_declares_name_and_params(cls, self.params)

    def test_rungs_are_increasing_rounds_below_the_last(self) -> None:
        """``rungs(n)`` are increasing ints in ``[1, n)``; the study's trials have one."""
        pruner = self.make_pruner()
        for num_rounds in (1, 2, self.num_rounds, 10, 100):
            rungs = pruner.rungs(num_rounds)
            assert all(isinstance(r, int) and 1 <= r < num_rounds for r in rungs), rungs
            assert list(rungs) == sorted(set(rungs)), f"rungs must increase: {rungs}"
        assert self.rungs(), f"no rung below {self.num_rounds} rounds; choose other params"

    def test_the_study_finishes_its_budget_and_prunes(self, trials: list[FrozenTrial]) -> None:
        """``n_trials`` trials, none failed or left running, some complete, some pruned."""
        states = [trial.state for trial in trials]
        assert len(trials) == self.n_trials, states
        assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
        assert TrialState.COMPLETE in states, "every trial was pruned"
        assert TrialState.PRUNED in states, (
            f"no trial was pruned in {self.n_trials} trials; choose params that prune sooner"
        )
        for trial in trials:
            if trial.state == TrialState.COMPLETE:
                assert "pruned_at_rung" not in trial.user_attrs
                assert len(trial.user_attrs["history"]) == self.num_rounds

    def test_pruned_trials_stop_at_a_rung_and_say_why(self, trials: list[FrozenTrial]) -> None:
        """Pruned at a rung (never before the first), with its rung, round and reason recorded."""
        rungs = self.rungs()
        for trial in trials:
            if trial.state != TrialState.PRUNED:
                continue
            attrs = trial.user_attrs
            rung, round_ = attrs["pruned_at_rung"], attrs["pruned_at_round"]
            assert round_ == rungs[rung] >= rungs[0], (rung, round_, rungs)
            assert len(attrs["val_accuracy_history"]) == round_, "it trained past its rung"
            reason = attrs["pruned_reason"]
            assert isinstance(reason, str) and reason.strip() and "\n" not in reason, reason
            assert attrs["rung_point"] == trial.system_attrs[f"{RUNG_ATTR_PREFIX}{round_}"]

    def test_decisions_depend_only_on_the_stored_points(self, trials: list[FrozenTrial]) -> None:
        """A fresh pruner, given each rung's stored points, decides as the study's did
        (asked in the reverse order, so state kept between calls shows)."""
        pruner = self.make_pruner()
        for trial in reversed(trials):
            for round_ in reversed(self.rungs()):
                stored = trial.system_attrs.get(f"{RUNG_ATTR_PREFIX}{round_}")
                if stored is None:
                    continue
                peers = [  # one worker: the earlier trials that reached this rung
                    RungPoint(**earlier.system_attrs[f"{RUNG_ATTR_PREFIX}{round_}"])
                    for earlier in trials[: trial.number]
                    if f"{RUNG_ATTR_PREFIX}{round_}" in earlier.system_attrs
                ]
                decision = pruner.decide(RungPoint(**stored), peers)
                pruned_here = trial.user_attrs.get("pruned_at_round") == round_
                if pruned_here:
                    assert sorted(p.trial for p in peers) == trial.user_attrs["rung_peers"]
                    assert decision == trial.user_attrs["pruned_reason"], (
                        f"trial {trial.number}: a fresh pruner decides {decision!r} at round "
                        f"{round_}; keep no state between calls"
                    )
                else:
                    assert decision is None, (
                        f"trial {trial.number} went on at round {round_}, but a fresh pruner "
                        f"stops it ({decision!r}); keep no state between calls"
                    )
