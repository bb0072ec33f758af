"""Secure aggregation in a study: sound combinations run and record, unsound ones exit 2."""

from __future__ import annotations

import optuna
import pytest

from fedsearch.cli._main import main
from fedsearch.components import Middleware
from fedsearch.host import get_registry
from tests._studies import tiny_space, tiny_study, write_study

SECAGG = {"name": "secagg_plus", "params": {"dropout": 0.25}}


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def one_line(code, err, fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


REFUSED = {
    "topk uplink codec": (
        {"federation": {"secure_aggregation": SECAGG, "uplink_codec": {"name": "topk"}}},
        None,
        ["federation.uplink_codec", "'topk' is not linear", "remove uplink_codec"],
    ),
    "sign uplink codec under ckks": (
        {"federation": {"secure_aggregation": {"name": "ckks"}, "uplink_codec": {"name": "sign"}}},
        None,
        ["federation.uplink_codec", "'sign' is not linear under ckks"],
    ),
    "searched uplink codecs": (
        {"federation": {"secure_aggregation": SECAGG}},
        tiny_space(slots={"uplink_codec": ["float32", "topk"]}),
        ["search.slots.uplink_codec", "topk", "float32"],
    ),
    "ring too small": (
        {
            "federation": {
                "secure_aggregation": {"name": "secagg_plus", "params": {"field_bits": 16}}
            }
        },
        None,
        ["federation.secure_aggregation", "wraps around", "raise field_bits"],
    ),
    "unknown protocol": (
        {"federation": {"secure_aggregation": {"name": "secagg"}}},
        None,
        ["federation.secure_aggregation", "secagg_plus"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsound_combinations_are_refused_in_one_line_before_storage(tmp_path, capsys, case):
    changes, space, fragments = REFUSED[case]
    study = write_study(tmp_path, tiny_study(**changes), space)
    code, err = run_cli(capsys, "validate", str(study))
    one_line(code, err, fragments)
    assert not (tmp_path / "runs").exists()


class PeekAtUpdates(Middleware):
    name = "peek_at_updates"

    def on_server_receive(self, update, context):
        return update


@pytest.mark.parametrize("where", ["configured", "searched"])
def test_middleware_that_reads_each_update_on_the_server_is_refused(tmp_path, where):
    from fedsearch import ConfigError, resolve_study

    registry = get_registry()
    registry.add(PeekAtUpdates, plugin="test", plugin_version=None)
    try:
        changes = {"secure_aggregation": SECAGG}
        space = tiny_space()
        if where == "configured":
            changes["middleware"] = [{"name": "peek_at_updates"}]
            field = r"federation\.middleware\[0\]"
        else:
            space = tiny_space(slots={"middleware": ["none", "peek_at_updates"]})
            field = r"search\.slots\.middleware"
        study = write_study(tmp_path, tiny_study(federation=changes), space)
        with pytest.raises(ConfigError, match=field + ".*on_server_receive"):
            resolve_study(study, registry)
    finally:
        registry._components["middleware"].pop("peek_at_updates")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("secure", "metric"),
    [(SECAGG, "secure_aggregation_overhead_bytes"), ({"name": "ckks"}, "he_overhead_bytes")],
)
def test_a_tiny_study_runs_under_each_protocol_with_dp_clipping(tmp_path, capsys, secure, metric):
    federation = {
        "fraction": 1.0,
        "secure_aggregation": secure,
        "middleware": [{"name": "clip_update", "params": {"max_norm": 5.0}}],
    }
    study = write_study(
        tmp_path, tiny_study(federation=federation, search={"n_trials": 2}, teacher={"rounds": 2})
    )
    code, err = run_cli(capsys, "run", str(study))
    assert code == 0, err
    storage = f"sqlite:///{tmp_path / 'runs' / 'fedsearch.db'}"
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 2
    for trial in trials:
        attrs = trial.user_attrs
        by_message = attrs["secure_aggregation_bytes_by_message"]
        assert attrs["secure_aggregation_bytes"] == sum(by_message.values())
        assert (
            attrs[metric]
            == attrs["secure_aggregation_bytes"] - attrs["secure_aggregation_plain_bytes"]
        )
        assert attrs[metric] > 0
        # secagg: one of the 4 clients drops in each of the 3 rounds; ckks: no dropout set
        assert attrs["dropped_clients"] == (3 if secure is SECAGG else 0)
        # every protocol byte of the trial is in its comm_bytes
        assert trial.values[2] >= attrs["secure_aggregation_bytes"]


@pytest.mark.parametrize(
    ("study", "protocol"),
    [("quickstart_secagg.toml", "secagg_plus"), ("quickstart_he.toml", "ckks")],
)
def test_the_protected_quickstarts_resolve_with_their_protocol(study, protocol):
    from fedsearch import resolve_study
    from tests.conftest import REPO

    resolved = resolve_study(REPO / "studies" / study, get_registry())
    assert resolved.secure_aggregation is not None
    assert resolved.secure_aggregation.name == protocol
