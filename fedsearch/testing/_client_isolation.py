"""The per-client isolation check shared by the compressor conformance suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fedsearch.components import Compressor, Weights
from fedsearch.federated import ClientRuntime, LocalTrainer

if TYPE_CHECKING:
    from torch import nn

ISOLATION_ROUND = 1
"""The round the isolation check trains in (after the server's first hook)."""


class ClientIsolationChecks:
    """Checks that what one client does never reaches another outside the channel.

    Mixed into ``CompressorTestCase``, which supplies ``set_up``, ``examples``,
    ``num_clients`` and ``output_tolerance``.
    """

    num_clients: int
    output_tolerance: float

    def set_up(self, seed: int = 0) -> tuple[Compressor, nn.Module]:  # pragma: no cover
        raise NotImplementedError

    def examples(self) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def train_client_five(self, first: list[int]) -> tuple[Weights, ClientRuntime]:
        """Client 5's weights after one round, the clients in ``first`` having trained before."""
        compressor, model = self.set_up()
        inputs, labels = self.examples()
        weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        compressor.on_round_start(weights, ISOLATION_ROUND)
        trainer = LocalTrainer(
            model,
            inputs,
            labels,
            [compressor],
            local_epochs=2,
            batch_size=len(labels),  # one batch per epoch: the shuffle order cannot matter
            learning_rate=0.05,
            generator=torch.Generator().manual_seed(0),
            execution="sequential",
        )
        clients = [torch.arange(k, len(labels), self.num_clients).numpy() for k in range(6)]
        runtime = ClientRuntime(trainer, clients)
        for client in first:
            runtime.fit({client: weights}, round_index=ISOLATION_ROUND)
        return runtime.fit({5: weights}, round_index=ISOLATION_ROUND).weights[5], runtime

    def test_state_of_one_client_never_reaches_another(self) -> None:
        """Client 5 trains the same weights whether or not client 3 trained before it,
        and the runtime hands the two clients different state objects."""
        alone, _ = self.train_client_five([])
        after_three, runtime = self.train_client_five([3])
        for name, tensor in alone.items():
            difference = (tensor - after_three[name]).abs().max().item()
            assert difference <= self.output_tolerance, (
                f"client 5's {name} changes by {difference} when client 3 trains first: "
                "state is shared between clients; keep it in client_state(client)"
            )
        for three, five in zip(runtime.states.of(3), runtime.states.of(5), strict=True):
            assert three is None or three is not five, "clients 3 and 5 share a state object"
