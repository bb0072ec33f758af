"""The compressed-model artifact: a model spec plus its tensors, as compact bytes.

``encode_artifact`` writes one, ``decode_artifact`` reads it back exactly and
``describe_artifact`` reports how each tensor is stored. ``len()`` of the
encoded bytes is the model size fedsearch reports.
"""

from __future__ import annotations

from fedsearch.artifact._format import (
    FORMAT_VERSION,
    decode_artifact,
    describe_artifact,
    encode_artifact,
)
from fedsearch.artifact._modules import (
    apply_overrides,
    build_module,
    describe_module,
    module_overrides,
)
from fedsearch.artifact._tensors import (
    Artifact,
    FloatTensor,
    ModelSpec,
    QuantizedTensor,
    StoredTensor,
    TensorReport,
)

__all__ = [
    "FORMAT_VERSION",
    "Artifact",
    "FloatTensor",
    "ModelSpec",
    "QuantizedTensor",
    "StoredTensor",
    "TensorReport",
    "apply_overrides",
    "build_module",
    "decode_artifact",
    "describe_artifact",
    "describe_module",
    "encode_artifact",
    "module_overrides",
]
