"""Low-rank factorisation: truncated SVD of linear layers, flattened SVD or Tucker-2 of convs."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from fedsearch import (
    ComponentParams,
    CompressionContext,
    Compressor,
    Registrar,
    SearchRange,
    Weights,
    hookimpl,
)


def rank_for(size: int, ratio: float) -> int:
    """``round(ratio * size)``, at least 1."""
    return max(1, round(ratio * size))


def truncated_svd(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(B, A)`` with ``B @ A`` the best rank-``rank`` approximation (Eckart-Young).

    The singular values are split evenly: ``B = U_r sqrt(S_r)``, ``A = sqrt(S_r) V_r^T``.
    """
    left, values, right = torch.linalg.svd(matrix.detach(), full_matrices=False)
    root = values[:rank].sqrt()
    return left[:, :rank] * root, root[:, None] * right[:rank]


def _filled(layer: nn.Module, weight: torch.Tensor) -> nn.Module:
    """``layer`` (built with ``skip_init``: no global RNG) holding ``weight`` and a zero bias."""
    with torch.no_grad():
        layer.weight.copy_(weight)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def _linear(inputs: int, outputs: int, weight: torch.Tensor, bias: bool) -> nn.Module:
    return _filled(torch.nn.utils.skip_init(nn.Linear, inputs, outputs, bias=bias), weight)


def _conv(like: nn.Conv2d, inputs: int, outputs: int, weight: torch.Tensor,
          spatial: bool, bias: bool) -> nn.Module:  # fmt: skip
    geometry = (like.kernel_size, like.stride, like.padding, like.dilation) if spatial else (1,)
    return _filled(
        torch.nn.utils.skip_init(nn.Conv2d, inputs, outputs, *geometry, bias=bias), weight
    )


def factorize_linear(weight: torch.Tensor, bias: bool, ratio: float) -> nn.Sequential | None:
    """``Linear(n, r, bias=False)`` then ``Linear(r, m)``; None when it would not be smaller."""
    outputs, inputs = weight.shape
    rank = rank_for(min(outputs, inputs), ratio)
    if rank * (inputs + outputs) >= inputs * outputs:
        return None
    second, first = truncated_svd(weight, rank)
    return nn.Sequential(
        _linear(inputs, rank, first, bias=False), _linear(rank, outputs, second, bias=bias)
    )


def factorize_conv_flattened(
    conv: nn.Conv2d, weight: torch.Tensor, bias: bool, ratio: float
) -> nn.Sequential | None:
    """SVD of the ``(out, in*kh*kw)`` matrix: a ``k x k`` conv to rank channels, then ``1 x 1``."""
    outputs, inputs, height, width = weight.shape
    columns = inputs * height * width
    rank = rank_for(min(outputs, columns), ratio)
    if rank * (columns + outputs) >= outputs * columns:
        return None
    second, first = truncated_svd(weight.reshape(outputs, columns), rank)
    return nn.Sequential(
        _conv(conv, inputs, rank, first.reshape(rank, inputs, height, width), True, bias=False),
        _conv(conv, rank, outputs, second.reshape(outputs, rank, 1, 1), False, bias=bias),
    )


def tucker2(weight: torch.Tensor, out_rank: int, in_rank: int) -> tuple[torch.Tensor, ...]:
    """Tucker-2 (HOSVD on the channel modes): ``(U_out, core, U_in)``."""
    outputs, inputs = weight.shape[:2]
    u_out = torch.linalg.svd(weight.reshape(outputs, -1), full_matrices=False)[0][:, :out_rank]
    unfolded = weight.transpose(0, 1).reshape(inputs, -1)
    u_in = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :in_rank]
    core = torch.einsum("oikl,or,is->rskl", weight, u_out, u_in)
    return u_out, core, u_in


def factorize_conv_tucker(
    conv: nn.Conv2d, weight: torch.Tensor, bias: bool, ratio: float
) -> nn.Sequential | None:
    """``1 x 1`` conv to ``r_in`` channels, ``k x k`` core conv to ``r_out``, ``1 x 1`` out."""
    outputs, inputs, height, width = weight.shape
    out_rank, in_rank = rank_for(outputs, ratio), rank_for(inputs, ratio)
    size = inputs * in_rank + in_rank * out_rank * height * width + out_rank * outputs
    if size >= weight.numel():
        return None
    u_out, core, u_in = tucker2(weight.detach(), out_rank, in_rank)
    return nn.Sequential(
        _conv(conv, inputs, in_rank, u_in.T.reshape(in_rank, inputs, 1, 1), False, bias=False),
        _conv(conv, in_rank, out_rank, core, True, bias=False),
        _conv(conv, out_rank, outputs, u_out.reshape(outputs, out_rank, 1, 1), False, bias=bias),
    )


class LowRankParams(ComponentParams):
    """Knobs of low-rank factorisation."""

    rank_ratio: Annotated[float, Field(gt=0.0, le=1.0), SearchRange(0.1, 0.6, step=0.05)] = 0.3
    """Kept rank as a share of the largest possible rank of each layer."""
    conv_mode: Literal["flattened", "tucker"] = "flattened"
    start_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    """Share of the rounds trained dense before the layers are factorised (at the server)."""
    include_last: bool = False
    """Factorise the classifier (the last layer) too."""


class LowRankFactorization(Compressor):
    """Replace layers by products of thin layers, then train those federatedly.

    At round ``start_fraction * R`` the server factorises every Linear layer
    (but the classifier, unless ``include_last``) by truncated SVD and every
    Conv2d by a flattened SVD or a Tucker-2 decomposition, keeping
    ``rank_ratio`` of the rank, wherever that makes the layer smaller. The
    following rounds train and transmit the factors, and the artifact stores
    them with the new layer shapes.
    """

    name = "svd"
    stage = "factorize"
    description = "low-rank SVD (linear) and flattened/Tucker-2 (conv) factorisation"
    Params = LowRankParams

    def setup(self, context: CompressionContext) -> None:
        """Keep the model; compute the factorisation round."""
        self.model = context.model
        self.factor_round = min(
            math.floor(self.params.start_fraction * context.num_rounds), context.num_rounds - 1
        )
        self.factorized: list[str] = []

    def on_round_start(self, weights: Weights, round_index: int) -> None:
        """At the factorisation round, swap layers for their factors in model and weights."""
        if round_index != self.factor_round:
            return
        replacements = {}
        layers = [
            (path, module)
            for path, module in self.model.named_modules()
            if isinstance(module, nn.Linear | nn.Conv2d)
        ]
        if not self.params.include_last:
            layers = layers[:-1]
        for path, module in layers:
            factors = self._factorize(module, weights, path)
            if factors is not None:
                replacements[path] = factors
        updated: Weights = {}
        for name, tensor in weights.items():
            path = name.rpartition(".")[0]
            if path not in replacements:
                updated[name] = tensor
            elif name.endswith(".weight"):
                factors = replacements[path]
                for key, value in factors.state_dict().items():
                    updated[f"{path}.{key}"] = value.detach().clone()
        for path, factors in replacements.items():
            self.model.set_submodule(path, factors)
            if f"{path}.bias" in weights:
                updated[f"{path}.{len(factors) - 1}.bias"] = weights[f"{path}.bias"].clone()
        weights.clear()
        weights.update(updated)
        self.factorized = list(replacements)

    def _factorize(self, module: nn.Module, weights: Weights, path: str) -> nn.Sequential | None:
        if not isinstance(module, nn.Linear | nn.Conv2d) or f"{path}.weight" not in weights:
            return None
        weight = weights[f"{path}.weight"]
        bias = module.bias is not None
        if isinstance(module, nn.Linear):
            return factorize_linear(weight, bias, self.params.rank_ratio)
        if module.groups != 1:
            return None
        if self.params.conv_mode == "tucker":
            return factorize_conv_tucker(module, weight, bias, self.params.rank_ratio)
        return factorize_conv_flattened(module, weight, bias, self.params.rank_ratio)


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register low-rank factorisation."""
    register.compressor(LowRankFactorization)
