"""Width-nested sub-models: which global coordinates a tier's slice holds, and aggregation.

A tier's sub-model is the same architecture built ``ratio`` as wide: every
parameter has the global one's name and a shape at most the global one's in
every dimension. A :class:`SlicePlan` maps each sliced dimension to the global
indices it holds: the leading ones (HeteroFL's static slicing, FjORD's ordered
prefixes) or a window that rolls by ``offset`` channels (FedRolex).

A dimension that follows a flattened feature map (a dense layer after
convolutions) is sliced in whole channels: its group size is the global size
over the channel count of the layer before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from fedsearch.components import Weights

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class SlicePlan:
    """Per parameter, per dimension: the global indices kept (None: the whole dimension)."""

    index: dict[str, tuple[torch.Tensor | None, ...]]

    def take(self, weights: Weights) -> Weights:
        """The sub-model's tensors cut out of ``weights`` (differentiable)."""
        sliced = {}
        for name, dims in self.index.items():
            tensor = weights[name]
            for dim, kept in enumerate(dims):
                if kept is not None:
                    tensor = tensor.index_select(dim, kept)
            sliced[name] = tensor
        return sliced

    def grid(self, name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        """Broadcastable index tensors of the global coordinates of ``name``'s slice."""
        full = [
            kept if kept is not None else torch.arange(size)
            for kept, size in zip(self.index[name], shape, strict=True)
        ]
        return tuple(torch.meshgrid(*full, indexing="ij"))


def slice_plan(global_shapes: Shapes, sub_shapes: Shapes, offset: int = 0) -> SlicePlan:
    """The plan that cuts ``sub_shapes`` out of ``global_shapes``.

    Args:
        global_shapes: The global model's parameter shapes, in module order.
        sub_shapes: The sub-model's (same names, no dimension larger).
        offset: Rolling-window start, in channels (0: the leading channels).

    Raises:
        ValueError: The names differ, a dimension is larger, or a flattened
            dimension does not split into whole channels.
    """
    if list(global_shapes) != list(sub_shapes):
        raise ValueError("the sub-model's parameters are not the global model's")
    index: dict[str, tuple[torch.Tensor | None, ...]] = {}
    previous_units: int | None = None
    for name, shape in global_shapes.items():
        sub = sub_shapes[name]
        if len(sub) != len(shape) or any(s > g for s, g in zip(sub, shape, strict=True)):
            raise ValueError(f"{name}: sub-model shape {sub} does not fit in {shape}")
        dims: list[torch.Tensor | None] = []
        for dim, (size, kept) in enumerate(zip(shape, sub, strict=True)):
            if kept == size:
                dims.append(None)
                continue
            group = 1
            if dim == 1 and previous_units and size != previous_units:
                group = size // previous_units
            if size % group or kept % group:
                raise ValueError(f"{name}: dimension {dim} does not split into whole channels")
            dims.append(_window(size // group, kept // group, group, offset))
        index[name] = tuple(dims)
        if len(shape) > 1:
            previous_units = shape[0]
    return SlicePlan(index)


def _window(units: int, kept: int, group: int, offset: int) -> torch.Tensor:
    start = torch.arange(kept) + offset
    chosen = start % units
    return (chosen[:, None] * group + torch.arange(group)).reshape(-1)


class SliceAggregator:
    """Averages overlapping slices: each coordinate over the clients that trained it.

    With ``normalise`` (FedNova), each update is divided by its number of local
    steps and the average is rescaled by the example-weighted mean step count
    of the clients that trained the coordinate, so partial work counts fairly.
    """

    def __init__(self, weights: Weights, *, normalise: bool = False) -> None:
        self.weights = weights
        self.normalise = normalise
        self.sums = _zeros(weights)
        self.counts = _zeros(weights)
        self.steps = _zeros(weights)

    def add(self, delta: Weights, plan: SlicePlan, examples: int, steps: int) -> None:
        """Add one client's update of its slice, weighted by its examples."""
        scale = examples / steps if self.normalise else float(examples)
        for name, value in delta.items():
            grid = plan.grid(name, tuple(self.weights[name].shape))
            self.sums[name].index_put_(grid, value.float() * scale, accumulate=True)
            ones = torch.ones_like(value, dtype=torch.float32)
            self.counts[name].index_put_(grid, ones * examples, accumulate=True)
            self.steps[name].index_put_(grid, ones * (examples * steps), accumulate=True)

    def result(self) -> Weights:
        """New global weights; coordinates no client trained keep their value."""
        merged = {}
        for name, weight in self.weights.items():
            counts = self.counts[name].clamp(min=1.0)
            step = self.sums[name] / counts
            if self.normalise:
                step = step * (self.steps[name] / counts)
            merged[name] = weight + step.to(weight.dtype)
        return merged


def _zeros(weights: Weights) -> Weights:
    return {name: torch.zeros_like(tensor, dtype=torch.float32) for name, tensor in weights.items()}
