"""Extra objectives: FLOPs, measured CPU inference latency, the deployed ONNX size and
the privacy budget epsilon (all off by default)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fedsearch import ComponentParams, Objective, PluginError, Registrar, decode_artifact, hookimpl


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass on one example.

    Counted by torch's ``FlopCounterMode`` from the operators the layers run
    (a multiply-accumulate counts 2; matrix products and convolutions, which
    dominate, are counted; element-wise ops such as ReLU are not). Pruned
    weights are stored as zeros and still counted: this is the dense cost.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())


class FLOPs(Objective):
    """Minimise the FLOPs of one inference (dense count, see ``count_flops``)."""

    name = "flops"
    metric = "flops"
    direction = "minimize"
    description = "FLOPs of one inference, counted from the model's layers"

    def measure(self, model: nn.Module, input_shape: tuple[int, ...]) -> float:
        """FLOPs of a batch of one."""
        return float(count_flops(model, input_shape))


class LatencyParams(ComponentParams):
    """How latency is timed."""

    runs: Annotated[int, Field(ge=1, le=10_000)] = 50
    warmup: Annotated[int, Field(ge=0, le=1_000)] = 5
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 1
    threads: Annotated[int, Field(ge=1, le=256)] = 1


class Latency(Objective):
    """Minimise measured CPU inference latency: the median of timed runs, in milliseconds.

    A wall-clock measure: it depends on the machine and its load, so unlike the
    other objectives it is not reproduced exactly by a rerun.
    """

    name = "latency"
    metric = "latency_ms"
    direction = "minimize"
    description = "median CPU inference latency over timed runs (ms)"
    Params = LatencyParams

    def measure(self, model: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Median wall time of ``runs`` forward passes after ``warmup`` untimed ones."""
        params: LatencyParams = self.params
        inputs = torch.zeros(params.batch_size, *input_shape)
        threads = torch.get_num_threads()
        torch.set_num_threads(params.threads)
        try:
            with torch.inference_mode():
                for _ in range(params.warmup):
                    model(inputs)
                timings = []
                for _ in range(params.runs):
                    started = time.perf_counter()
                    model(inputs)
                    timings.append((time.perf_counter() - started) * 1000.0)
        finally:
            torch.set_num_threads(threads)
        return statistics.median(timings)


class DeployBytes(Objective):
    """Minimise the bytes that ship: the ONNX export with integer weights.

    The size of ``fedsearch export --format onnx``'s file without its metadata
    (``fedsearch.export.integer_onnx``): integer codes, half floats and sparse
    tensors as the artifact stores them, plus the graph. Needs the ``export``
    extra (``pip install 'fedsearch[export]'``).
    """

    name = "deploy_bytes"
    metric = "deploy_bytes"
    direction = "minimize"
    description = "bytes of the ONNX export with integer weights (needs fedsearch[export])"

    def measure(self, model: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Not measurable from the model alone: the stored form is in the artifact."""
        raise PluginError(
            "deploy_bytes measures the trial's artifact: call measure_trial", plugin=self.name
        )

    def measure_trial(
        self,
        artifact: bytes,
        model: nn.Module,
        input_shape: tuple[int, ...],
        attributes: Mapping[str, Any],
    ) -> float:
        """Length of the artifact's ONNX export with integer weights."""
        from fedsearch.export import integer_onnx

        return float(len(integer_onnx(model, decode_artifact(artifact))))


class RecordedObjective(Objective):
    """An objective the trial recorded as a user attribute, not one measured on its model.

    Subclasses set ``attribute`` (the user attribute reported) and ``missing``
    (what a study must run to record it, said when a trial lacks it).
    """

    attribute: ClassVar[str]
    missing: ClassVar[str]

    def measure(self, model: nn.Module, input_shape: tuple[int, ...]) -> float:
        """Not measurable from the model: the value is the run's."""
        raise PluginError(f"{self.name} is the run's: call measure_trial", plugin=self.name)

    def measure_trial(
        self,
        artifact: bytes,
        model: nn.Module,
        input_shape: tuple[int, ...],
        attributes: Mapping[str, Any],
    ) -> float:
        """The trial's recorded ``attribute``."""
        if self.attribute not in attributes:
            raise PluginError(self.missing, plugin=self.name)
        return float(attributes[self.attribute])


class Epsilon(RecordedObjective):
    """Minimise the trial's client-level privacy budget: its recorded ``epsilon``.

    The epsilon that dp-accounting computes for the trial's DP strategy or
    middleware (``dp_fedavg``, ``local_dp``) at their ``delta``; the study
    must run one of them (checked before the study is stored).
    """

    name = "epsilon"
    metric = "epsilon"
    direction = "minimize"
    description = "client-level DP epsilon from dp-accounting (needs dp_fedavg or local_dp)"
    attribute = "epsilon"
    missing = (
        "the trial ran without differential privacy; use strategy dp_fedavg or middleware local_dp"
    )


class RoundTime(RecordedObjective):
    """Minimise the simulated seconds of the whole federated training: its ``round_time_s``.

    Each round lasts until its last on-time client's update arrives (or the
    deadline, when a client misses it): download and upload times are the real
    payload bytes over the tier's bandwidth, compute time the local work over
    the tier's speed. Needs a ``[tiers]`` table (``docs/heterogeneous-clients.md``;
    checked before the study is stored).
    """

    name = "round_time"
    metric = "round_time"
    direction = "minimize"
    description = "simulated seconds of the whole training (needs [tiers])"
    attribute = "round_time_s"
    missing = "round_time is measured by a heterogeneous simulation: add a [tiers] table"


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the extra objectives."""
    register.objective(FLOPs)
    register.objective(Latency)
    register.objective(DeployBytes)
    register.objective(Epsilon)
    register.objective(RoundTime)
