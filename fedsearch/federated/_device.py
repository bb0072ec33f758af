"""Where a study computes: the ``device`` setting, checked and resolved, and workers' GPUs."""

from __future__ import annotations

import logging

import torch

from fedsearch._errors import ConfigError

logger = logging.getLogger("fedsearch")

CPU_FALLBACK_NOTE = "device = 'auto': no CUDA GPU available, running on the CPU"
"""What ``auto`` says when it falls back to the CPU."""


def device_note(spec: str, device: torch.device) -> str | None:
    """The line to show a user about the resolved device: the CPU fallback of ``auto``."""
    return CPU_FALLBACK_NOTE if spec == "auto" and device.type == "cpu" else None


def resolve_device(spec: str, *, source: str | None = None) -> torch.device:
    """The device a study's data, models and clients live on.

    ``auto`` is the first CUDA GPU when one is available, else the CPU (said in
    one info line). ``cuda`` means every GPU of the machine (worker processes
    spread over them; the parent process uses the first); ``cuda:N`` one GPU.

    Args:
        spec: The ``device`` value of the study file.
        source: The study file, named in errors.

    Raises:
        ConfigError: ``cuda`` or ``cuda:N`` where no such GPU is available.
    """
    if spec == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if spec == "auto":
        if available:
            return torch.device("cuda")
        logger.info(CPU_FALLBACK_NOTE)
        return torch.device("cpu")
    if not available:
        raise ConfigError(
            f"device = {spec!r} but no CUDA GPU is available to PyTorch "
            f'(torch {torch.__version__}); set device = "cpu" or "auto"',
            source=source,
            field="device",
        )
    device = torch.device(spec)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device = {spec!r} but this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; "
            'pick one of those or "cuda" for all',
            source=source,
            field="device",
        )
    return device


def worker_devices(device: torch.device, workers: int) -> list[torch.device]:
    """The device of each of ``workers`` client-training processes.

    On the CPU every worker computes there. ``cuda`` without an index spreads
    the workers round-robin over the machine's GPUs (worker ``k`` on
    ``cuda:k mod count``); ``cuda:N`` puts them all on GPU ``N``.
    """
    if device.type != "cuda":
        return [device] * workers
    if device.index is not None:
        return [device] * workers
    count = max(torch.cuda.device_count(), 1)
    return [torch.device("cuda", index % count) for index in range(workers)]
