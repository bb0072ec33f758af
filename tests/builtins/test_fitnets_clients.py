"""FitNets keeps one regressor per client, seeded per client, trained only on that client's data."""

from __future__ import annotations

import torch

from fedsearch import CompressionContext, Teacher
from fedsearch.federated import ClientRuntime, LocalTrainer
from fedsearch.testing._rounds import tiny_data


def regressor_values(state):
    return [parameter.detach().clone() for parameter in state.regressor.parameters()]


def test_one_clients_regressor_is_never_trained_by_anothers_batches(registry):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(36, 10, generator=generator)
    labels = torch.randint(0, 3, (36,), generator=generator)
    data = tiny_data(inputs, labels, 3, 6)
    teacher_family = registry.create("architecture", "mlp", {"widths": [12]})
    student_family = registry.create("architecture", "mlp", {"widths": [6]})
    torch.manual_seed(1)
    teacher_model = teacher_family.build((10,), 3).eval()
    student = student_family.build((10,), 3)
    with torch.no_grad():
        teacher = Teacher(teacher_model.state_dict(), teacher_model(inputs), 0, 0, 0, teacher_model)
    fitnets = registry.create("compressor", "fitnets", {"beta": 1.0})
    fitnets.setup(CompressionContext(student, num_rounds=3, teacher=teacher, seed=7))
    trainer = LocalTrainer(
        student, inputs, labels, [fitnets], local_epochs=1, batch_size=3, learning_rate=0.1,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    runtime = ClientRuntime(trainer, data.client_indices)
    weights = {name: tensor.detach().clone() for name, tensor in student.state_dict().items()}
    rng = torch.get_rng_state()

    runtime.fit({3: weights}, round_index=0)
    (three,) = runtime.states.of(3)
    after_own_round = regressor_values(three)
    runtime.fit({5: weights}, round_index=0)
    (five,) = runtime.states.of(5)
    assert five.regressor is not three.regressor
    for mine, now in zip(after_own_round, regressor_values(three), strict=True):
        assert torch.equal(mine, now)  # client 5's batches did not touch client 3's regressor
    runtime.fit({3: weights}, round_index=1)
    assert any(  # its own next round does: the state lives on across rounds
        not torch.equal(mine, now)
        for mine, now in zip(after_own_round, regressor_values(three), strict=True)
    )
    assert torch.equal(torch.get_rng_state(), rng)  # per-client generators, not the global RNG
