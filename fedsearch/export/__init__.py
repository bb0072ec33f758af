"""Deployable exports of an artifact: ONNX with integer weights, and the runtimes that run them.

``integer_onnx`` rewrites torch.onnx's graph so that each weight keeps the form
the artifact stores it in; ``executorch_program`` writes a mobile program; the
``*_logits`` functions run an exported file in its own runtime (for re-scoring).
"""

from __future__ import annotations

from fedsearch.export._executorch import executorch_program
from fedsearch.export._onnx import ONNX_OPSET, integer_onnx
from fedsearch.export._runtimes import executorch_logits, onnx_logits, torchscript_logits

__all__ = [
    "ONNX_OPSET",
    "executorch_logits",
    "executorch_program",
    "integer_onnx",
    "onnx_logits",
    "torchscript_logits",
]
