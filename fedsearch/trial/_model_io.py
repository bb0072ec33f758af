"""Compressed artifacts of trained models: writing them and loading them back."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from fedsearch._errors import ArtifactError, FedsearchError
from fedsearch.artifact import (
    FloatTensor,
    ModelSpec,
    StoredTensor,
    apply_overrides,
    decode_artifact,
    encode_artifact,
    module_overrides,
)
from fedsearch.components import Architecture, Compressor, StepContext, Weights
from fedsearch.host import ComponentRegistry


def architecture_spec(
    architecture: Architecture,
    input_shape: tuple[int, ...],
    num_classes: int,
    metadata: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """The spec that rebuilds ``architecture`` (its name and params) for the data's shapes."""
    return ModelSpec(
        architecture=architecture.name,
        params=architecture.params.model_dump(mode="json"),
        input_shape=input_shape,
        num_classes=num_classes,
        metadata=dict(metadata or {}),
    )


@torch.no_grad()
def build_artifact(
    spec: ModelSpec,
    weights: Weights,
    compressors: Sequence[Compressor] = (),
    *,
    model: nn.Module | None = None,
    reference: nn.Module | None = None,
    round_index: int = 0,
) -> bytes:
    """Serialise ``weights`` as the compressors store them; the rest as float32.

    Compressors run in stage order: each sees the parameters transformed by
    the stages before it (a quantizer sees pruned weights), and may claim
    tensors to store in its own form (integer codes and scales).

    Args:
        spec: How to rebuild the module.
        weights: The final weights.
        compressors: The trial's compressors, in stage order.
        model: The trained module, when compression may have changed its
            structure; its submodules that differ from ``reference`` are
            recorded in the spec so the loader rebuilds the smaller model.
        reference: The architecture as freshly built (required with ``model``).
        round_index: The round the weights come from (the compressors' step context).
    """
    if model is not None and reference is not None:
        spec = replace(spec, modules=module_overrides(model, reference))
    params = {name: tensor.detach() for name, tensor in weights.items()}
    stored: dict[str, StoredTensor] = {}
    for compressor in compressors:
        stored.update(compressor.stored_tensors(params))
        params = compressor.transform_parameters(params, StepContext.evaluating(round_index))
    tensors = {
        name: stored.get(name) or FloatTensor(params[name].to(torch.float32).contiguous().numpy())
        for name in weights
    }
    return encode_artifact(spec, tensors)


def load_model(data: bytes, registry: ComponentRegistry) -> nn.Module:
    """Rebuild the module an artifact describes, with its decoded weights.

    Artifacts are untrusted input: everything the header names (architecture,
    params, input shape, class count, module overrides) is first built on
    PyTorch's ``meta`` device, which allocates nothing, and checked against the
    stored tensors and a forward pass on the input shape. Only a module that
    fits is then built for real, so a crafted header cannot make the loader
    allocate more than the artifact's bounded tensors.

    Raises:
        ArtifactError: The bytes are not a valid artifact, its architecture is
            not installed, or its header does not describe the stored tensors.
    """
    artifact = decode_artifact(data)
    spec = artifact.spec
    try:
        architecture = registry.create(
            "architecture", spec.architecture, spec.params, source="artifact"
        )
    except FedsearchError as exc:
        raise ArtifactError(
            f"cannot rebuild the artifact's architecture ({exc}); install the plugin that "
            "provides it, or re-export the artifact with `fedsearch export`"
        ) from exc
    assert isinstance(architecture, Architecture)
    state = artifact.state_dict()
    try:
        _check_skeleton(architecture, spec, state)
        model = apply_overrides(
            architecture.build(tuple(spec.input_shape), spec.num_classes), spec.modules
        )
        model.load_state_dict(state, strict=True)
    except ArtifactError:
        raise  # says itself what to do (a model factory the caller did not supply)
    except Exception as exc:  # anything a plugin's build raises on a bad header
        raise ArtifactError(
            f"artifact does not fit its architecture {spec.architecture!r} "
            f"({type(exc).__name__}: {exc}); re-export it with `fedsearch export`"
        ) from exc
    return model.eval()


def _check_skeleton(
    architecture: Architecture, spec: ModelSpec, state: dict[str, torch.Tensor]
) -> None:
    """Build the described module on the meta device and check it against ``state``.

    Raises:
        ValueError: Names or shapes differ, or the input shape does not fit.
    """
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zero-size layers of a crafted header
        skeleton = apply_overrides(
            architecture.build(tuple(spec.input_shape), spec.num_classes), spec.modules
        )
        expected = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
        stored = {name: tuple(tensor.shape) for name, tensor in state.items()}
        if expected != stored:
            differ = sorted(set(expected.items()) ^ set(stored.items()))[:3]
            raise ValueError(f"tensors differ from the module's: {differ}")
        with torch.no_grad():
            skeleton.eval()(torch.empty((1, *spec.input_shape)))
