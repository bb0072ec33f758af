"""The ``secagg_plus`` secure aggregator: quantize, run SecAgg+, dequantize the mean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field

from fedsearch import Channel, ComponentParams, SecureAggregate, SecureAggregator, Weights
from fedsearch_builtins.secure_aggregation._field import FieldSpec
from fedsearch_builtins.secure_aggregation._protocol import secure_sum


class SecAggPlusParams(ComponentParams):
    """Knobs of SecAgg+ (Bell et al. 2020)."""

    field_bits: Annotated[int, Field(ge=8, le=62)] = 32
    """Masked vectors are integers modulo ``2**field_bits``: ``ceil(bits / 8)`` bytes a value."""
    quantization_bits: Annotated[int, Field(ge=2, le=30)] = 16
    """An update value is rounded to ``2**(q-1) - 1`` levels on each side of 0."""
    clip: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    """Update values are clipped to ``[-clip, clip]`` before quantization."""
    max_weight: Annotated[int, Field(ge=1, le=2**20)] = 1000
    """A client's weight (its number of examples) is capped at this (as in Flower's SecAgg+)."""
    neighbours: Annotated[int, Field(ge=0)] = 0
    """Clients each client shares with (the graph degree); 0: ``max(8, 3 log2 n)``, even."""
    threshold_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    """Shares needed to rebuild a secret: ``floor(fraction * degree) + 1``."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Share of each round's clients that drop out (drawn from the trial's seed)."""
    dropout_after: Literal["advertise_keys", "share_keys", "masked_input"] = "share_keys"
    """The protocol stage after which dropping clients leave."""


class SecAggPlus(SecureAggregator):
    """SecAgg+ (Bell et al. 2020): pairwise masks over a sparse graph, Shamir dropout recovery.

    Each client quantizes ``weight * update`` into the integers modulo
    ``2**field_bits`` (``FieldSpec``), then the round runs the protocol's
    stages over the channel (``secure_sum``): the server learns the sum of
    the survivors' vectors and their total weight, nothing of one update.
    Dropped clients are left out of the mean; a round in which too few
    shares come back aborts the trial with a message saying what to change.

    The uplink is the masked vectors, so the study's uplink codec is not used
    (only ``float32`` is accepted with it); ``quantization_bits`` and
    ``field_bits`` set the precision and width on the wire.
    """

    name = "secagg_plus"
    description = "SecAgg+ secure aggregation (Bell et al. 2020)"
    Params = SecAggPlusParams
    params: SecAggPlusParams

    @property
    def field(self) -> FieldSpec:
        """The ring and quantization grid of these params."""
        params = self.params
        return FieldSpec(
            params.field_bits, params.quantization_bits, params.clip, params.max_weight
        )

    def check(self, clients_per_round: int) -> None:
        """Refuse a ring too small for the round's weighted sum."""
        self.field.check(clients_per_round)

    def aggregate(
        self,
        channel: Channel,
        updates: Mapping[int, Weights],
        weights: Mapping[int, int],
        *,
        round_index: int,
        seed: int,
    ) -> SecureAggregate:
        """Quantize each update, run SecAgg+, return the survivors' weighted mean."""
        field = self.field
        vectors = {
            client: field.quantize(update, field.weight(weights[client]))
            for client, update in updates.items()
        }
        params = self.params
        result = secure_sum(
            channel,
            vectors,
            field,
            round_index=round_index,
            seed=seed,
            degree=params.neighbours,
            threshold_fraction=params.threshold_fraction,
            dropout=params.dropout,
            dropout_after=params.dropout_after,
        )
        like = next(iter(updates.values()))
        signed = field.signed(result.total)
        return SecureAggregate(
            mean_delta=field.dequantize_mean(result.total, like),
            total_weight=float(signed[-1]),
            survivors=result.survivors,
            dropped=result.dropped,
            plain_bytes=4 * (len(result.total) - 1) * len(result.survivors),
        )
