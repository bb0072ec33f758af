"""Compressed artifacts of trained models: writing them and loading them back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from fedsearch._errors import ArtifactError
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

    Raises:
        ArtifactError: The bytes are not a valid artifact.
        ConfigError: The artifact's architecture is not installed.
    """
    artifact = decode_artifact(data)
    spec = artifact.spec
    architecture = registry.create(
        "architecture", spec.architecture, spec.params, source="artifact"
    )
    assert isinstance(architecture, Architecture)
    model = architecture.build(tuple(spec.input_shape), spec.num_classes)
    try:
        model = apply_overrides(model, spec.modules)
        model.load_state_dict(artifact.state_dict(), strict=True)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ArtifactError(
            f"artifact does not fit its architecture {spec.architecture!r} ({exc}); "
            "re-export it with `fedsearch export`"
        ) from exc
    return model.eval()
