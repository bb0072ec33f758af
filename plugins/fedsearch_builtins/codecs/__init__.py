"""Built-in payload codecs: dense floats, sparsifiers, quantizers, error feedback.

Compose them into pipelines (``["error_feedback", "topk", "qsgd"]``); see each
class for its wire format and the error bound its round trip guarantees.
"""

from __future__ import annotations

from fedsearch import Registrar, hookimpl
from fedsearch_builtins.codecs._dense import BFloat16Codec, Float16Codec, Float32Codec
from fedsearch_builtins.codecs._quantize import QsgdCodec, SignCodec
from fedsearch_builtins.codecs._sparse import (
    ErrorFeedbackCodec,
    RandomKCodec,
    SparseTernaryCodec,
    TopKCodec,
)

CODECS = (
    Float32Codec,
    Float16Codec,
    BFloat16Codec,
    TopKCodec,
    RandomKCodec,
    SparseTernaryCodec,
    QsgdCodec,
    SignCodec,
    ErrorFeedbackCodec,
)

__all__ = [
    "CODECS",
    "BFloat16Codec",
    "ErrorFeedbackCodec",
    "Float16Codec",
    "Float32Codec",
    "QsgdCodec",
    "RandomKCodec",
    "SignCodec",
    "SparseTernaryCodec",
    "TopKCodec",
]


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register the built-in codecs."""
    for codec in CODECS:
        register.codec(codec)
