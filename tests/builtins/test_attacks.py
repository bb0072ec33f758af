"""Attack middleware: which clients are malicious, what they do, and the backdoor's success rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fedsearch_builtins.attacks import (
    LabelFlip,
    PixelBackdoor,
    SignFlip,
    malicious_clients,
    with_pattern,
)

from fedsearch import PayloadContext, evaluate_selection, resolve_study
from fedsearch.federated._client_data import client_training_data
from fedsearch.search import ComponentChoice, Selection
from fedsearch.study import prepare_runtime
from fedsearch.testing import MiddlewareTestCase
from tests._studies import DROP, tiny_space, tiny_study, write_study


class TestSignFlip(MiddlewareTestCase):
    middleware_class = SignFlip
    params = {"fraction": 0.5, "scale": 2.0}


class TestPixelBackdoor(MiddlewareTestCase):
    middleware_class = PixelBackdoor
    params = {"fraction": 0.5, "boost": 3.0}


def context(client, num_clients=10, seed=4):
    return PayloadContext(0, client, 99, num_clients=num_clients, trial_seed=seed)


def test_the_malicious_clients_are_an_exact_share_fixed_by_the_trial_seed():
    chosen = malicious_clients(20, 0.2, trial_seed=4)
    assert len(chosen) == 4 and chosen == malicious_clients(20, 0.2, trial_seed=4)
    assert chosen != malicious_clients(20, 0.2, trial_seed=5)
    assert malicious_clients(20, 0.0, 4) == frozenset()
    assert malicious_clients(20, 1.0, 4) == frozenset(range(20))


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("sign_flip", {"scale": 3.0}, [-3.0, 6.0]),
        ("boost_update", {"factor": 10.0}, [10.0, -20.0]),
    ],
)
def test_model_poisoning_changes_only_malicious_updates(registry, name, params, expected):
    attack = registry.create("middleware", name, {"fraction": 0.3, **params})
    bad = sorted(malicious_clients(10, 0.3, 4))
    good = next(k for k in range(10) if k not in bad)
    update = {"w": torch.tensor([1.0, -2.0])}
    assert attack.on_client_send(update, context(bad[0]))["w"].tolist() == expected
    assert attack.on_client_send(update, context(good))["w"].tolist() == [1.0, -2.0]


def test_noise_updates_replace_the_update_with_seeded_noise(registry):
    attack = registry.create("middleware", "noise_update", {"fraction": 1.0, "stddev": 2.0})
    update = {"w": torch.ones(50_000), "count": torch.tensor(3)}
    noisy = attack.on_client_send(update, context(1))
    assert torch.equal(noisy["w"], attack.on_client_send(update, context(1))["w"])
    assert float(noisy["w"].mean()) == pytest.approx(0.0, abs=0.05)
    assert float(noisy["w"].std()) == pytest.approx(2.0, rel=0.02)
    assert int(noisy["count"]) == 3


def test_label_flipping_rewrites_only_the_malicious_clients_own_labels():
    labels = torch.arange(40) % 10
    inputs = torch.zeros(40, 1, 4, 4)
    indices = [np.arange(k, 40, 4) for k in range(4)]
    attack = LabelFlip(LabelFlip.Params(fraction=0.5))
    new_inputs, new_labels = client_training_data(inputs, labels, indices, [attack], seed=4)
    bad = malicious_clients(4, 0.5, 4)
    for client, own in enumerate(indices):
        flipped = (9 - labels[own]).tolist()
        assert new_labels[own].tolist() == (flipped if client in bad else labels[own].tolist())
    assert labels.tolist() == (torch.arange(40) % 10).tolist()  # the shared data is left alone
    assert torch.equal(new_inputs, inputs)


def test_the_backdoor_stamps_part_of_a_malicious_client_s_images():
    inputs = torch.rand(100, 1, 8, 8) * 0.5
    labels = torch.full((100,), 3)
    attack = PixelBackdoor(PixelBackdoor.Params(fraction=1.0, poison_fraction=0.3, patch=2))
    stamped, relabelled = attack.on_client_data(inputs, labels, context(0, num_clients=1))
    changed = (relabelled == 0).nonzero().flatten()
    assert len(changed) == 30
    assert torch.equal(stamped[changed], with_pattern(inputs[changed], 2, float(inputs.max())))
    untouched = (relabelled == 3).nonzero().flatten()
    assert torch.equal(stamped[untouched], inputs[untouched])


def test_a_trial_records_the_backdoor_s_success_on_the_test_split(tmp_path, registry):
    backdoor = {"name": "pixel_backdoor", "params": {"fraction": 0.5, "patch": 2}}
    federation = {"num_clients": 4, "rounds": 6, "fraction": 1.0, "middleware": [backdoor]}
    study = tiny_study(teacher=DROP, federation=federation)
    path = write_study(tmp_path, study, tiny_space(slots={"distill": ["none"]}))
    runtime = prepare_runtime(resolve_study(path, registry))
    selection = Selection(ComponentChoice("mlp", {"depth": 1, "widths": [32]}), {})
    outcome = evaluate_selection(runtime, selection)
    data = runtime.data
    others = data.test_labels != 0
    stamped = with_pattern(data.test_inputs[others], 2, float(data.test_inputs.max()))
    with torch.no_grad():
        rate = float((outcome.model(stamped).argmax(1) == 0).float().mean())
    attack = runtime.study.middleware[0].build()
    report = attack.test_report(outcome.model, data.test_inputs, data.test_labels)
    assert report == {"attack_success_rate": pytest.approx(rate)}
    assert rate > 0.5  # two of four clients poisoned half their images
