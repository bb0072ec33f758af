"""Sequential and vectorized client execution train the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedsearch import CompressionContext
from fedsearch.federated import ClientJob, LocalTrainer, choose_execution


def make_trainer(model, execution, compressors=(), batch_size=8, epochs=2, max_grad_norm=None):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(60, 1, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (60,), generator=generator)
    return LocalTrainer(
        model,
        inputs,
        labels,
        list(compressors),
        local_epochs=epochs,
        batch_size=batch_size,
        learning_rate=0.2,
        max_grad_norm=max_grad_norm,
        generator=torch.Generator().manual_seed(1),
        execution=execution,
    )


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


# clients of different sizes: different numbers of batches and short last batches
CLIENTS = [np.arange(0, 20), np.arange(20, 25), np.arange(25, 44), np.arange(44, 60)]


def run(model, execution, compressors=(), mu=0.0, weights=None, **kwargs):
    trainer = make_trainer(model, execution, compressors, **kwargs)
    if weights is None:
        weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
    jobs = [ClientJob(client, indices) for client, indices in enumerate(CLIENTS)]
    outcome = trainer.train_clients(weights, jobs, proximal_mu=mu)
    return outcome.results, outcome.execution


@pytest.mark.parametrize(("mu", "max_grad_norm"), [(0.0, None), (0.5, None), (0.0, 0.3)])
def test_vectorized_equals_sequential_for_uneven_clients(mu, max_grad_norm):
    sequential, used_seq = run(mlp(), "sequential", mu=mu, max_grad_norm=max_grad_norm)
    vectorized, used_vec = run(mlp(), "vectorized", mu=mu, max_grad_norm=max_grad_norm)
    if max_grad_norm is not None:  # the limit binds: clipped training differs from unclipped
        unclipped, _ = run(mlp(), "sequential", mu=mu)
        assert not torch.allclose(unclipped[0][0]["1.weight"], sequential[0][0]["1.weight"])
    assert (used_seq, used_vec) == ("sequential", "vectorized")
    start = mlp().state_dict()
    for (seq_w, seq_loss), (vec_w, vec_loss) in zip(sequential, vectorized, strict=True):
        assert seq_loss == pytest.approx(vec_loss, rel=1e-5)
        for name in seq_w:
            assert not torch.equal(seq_w[name], start[name])  # every client really trained
            torch.testing.assert_close(vec_w[name], seq_w[name], rtol=1e-5, atol=1e-6)


def test_vectorized_equals_sequential_for_a_cnn():
    def cnn():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))

    sequential, _ = run(cnn(), "sequential", epochs=1)
    vectorized, _ = run(cnn(), "vectorized", epochs=1)
    for (seq_w, _), (vec_w, _) in zip(sequential, vectorized, strict=True):
        for name in seq_w:
            torch.testing.assert_close(vec_w[name], seq_w[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_vectorized_equals_sequential_with_pruning_and_quantization(registry, scheme, granularity):
    def compressors():
        model = mlp()
        quantize = {"bits": 4, "scheme": scheme, "granularity": granularity}
        chosen = [
            registry.create("compressor", "magnitude", {"sparsity": 0.5, "start_fraction": 0.0}),
            registry.create("compressor", "uniform", quantize),
        ]
        context = CompressionContext(model=model, num_rounds=1, teacher=None)
        weights = {name: t.detach().clone() for name, t in model.state_dict().items()}
        for compressor in chosen:
            compressor.setup(context)
            compressor.on_round_start(weights, 0)
        return chosen, weights

    chosen, pruned = compressors()
    sequential, _ = run(mlp(), "sequential", chosen, weights=pruned)
    chosen, pruned = compressors()
    vectorized, _ = run(mlp(), "vectorized", chosen, weights=pruned)
    for (seq_w, _), (vec_w, _) in zip(sequential, vectorized, strict=True):
        # the clients kept the zero pattern they received
        assert torch.equal(seq_w["1.weight"] == 0, pruned["1.weight"] == 0)
        for name in seq_w:
            torch.testing.assert_close(vec_w[name], seq_w[name], rtol=1e-5, atol=1e-5)


def test_auto_vectorizes_mlps_and_not_convolutions():
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    assert choose_execution(mlp(), "auto", 10) == "vectorized"
    assert choose_execution(mlp(), "auto", 1) == "sequential"
    assert choose_execution(cnn, "auto", 10) == "sequential"
    assert choose_execution(cnn, "vectorized", 10) == "vectorized"
    big = nn.Sequential(nn.Flatten(), nn.Linear(784, 200), nn.Linear(200, 10))
    assert choose_execution(big, "auto", 10) == "sequential"  # 10 x 159k weights > 2 MiB
    assert choose_execution(big, "auto", 3) == "vectorized"


def test_auto_keeps_loss_changing_compressors_sequential(registry):
    distill = registry.create("compressor", "soft_target")
    prune = registry.create("compressor", "magnitude")
    assert choose_execution(mlp(), "auto", 10, [prune]) == "vectorized"
    assert choose_execution(mlp(), "auto", 10, [prune, distill]) == "sequential"


def test_training_never_changes_the_shared_model():
    model = mlp()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    run(model, "sequential")
    run(model, "vectorized")
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_proximal_term_keeps_clients_near_the_global_weights():
    start = mlp().state_dict()

    def drift(mu):
        results, _ = run(mlp(), "sequential", mu=mu)
        return sum(float((w[n] - start[n]).norm()) for w, _ in results for n in start)

    assert drift(5.0) < 0.8 * drift(0.0)


def test_small_models_train_on_one_thread_and_the_setting_is_restored():
    from fedsearch.federated import intra_op_threads

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with intra_op_threads(mlp()):
            inside = torch.get_num_threads()
        big = nn.Linear(1000, 200)
        with intra_op_threads(big):
            inside_big = torch.get_num_threads()
        assert (inside, inside_big, torch.get_num_threads()) == (1, 2, 2)
    finally:
        torch.set_num_threads(previous)


def test_auto_keeps_batch_norm_models_sequential_and_they_train():
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    assert choose_execution(model, "auto", 4) == "sequential"
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(32, 6, generator=generator), torch.arange(32) % 3
    trainer = LocalTrainer(model, inputs, labels, [], local_epochs=1, batch_size=8,
                           learning_rate=0.1, generator=generator)  # fmt: skip
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    jobs = [ClientJob(0, np.arange(16)), ClientJob(1, np.arange(16, 32))]
    outcome = trainer.train_clients(weights, jobs)
    trained, _ = outcome.results[0]
    assert outcome.execution == "sequential"
    assert not torch.equal(trained["1.running_mean"], weights["1.running_mean"])
