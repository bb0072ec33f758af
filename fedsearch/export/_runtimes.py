"""Run an exported file in the runtime it is made for and return its logits."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from fedsearch._errors import ConfigError

BATCH_SIZE = 256


def _batches(inputs: np.ndarray) -> list[np.ndarray]:
    return [inputs[start : start + BATCH_SIZE] for start in range(0, len(inputs), BATCH_SIZE)]


def onnx_logits(path: str | Path, inputs: np.ndarray) -> np.ndarray:
    """Logits of an ONNX file in onnxruntime (CPU)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            "re-scoring an ONNX export needs onnxruntime: pip install 'fedsearch[export]'",
            field="--format",
        ) from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: batch})[0] for batch in _batches(inputs)])


def torchscript_logits(path: str | Path, inputs: np.ndarray) -> np.ndarray:
    """Logits of a TorchScript file loaded with ``torch.jit.load``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return np.concatenate(
            [module(torch.from_numpy(batch)).numpy() for batch in _batches(inputs)]
        )


def executorch_logits(path: str | Path, inputs: np.ndarray) -> np.ndarray:
    """Logits of an ExecuTorch program run by the ExecuTorch runtime, one example at a time."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(Path(path).read_bytes())
    method = program.load_method("forward")
    return np.concatenate(
        [method.execute([torch.from_numpy(row[None])])[0].numpy() for row in inputs]
    )
