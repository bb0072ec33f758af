"""A pretrained teacher given by file: a PyTorch state dict or a fedsearch artifact.

``[teacher] pretrained = "lenet.pt"`` (relative to the study file) replaces the
teacher's federated training: its weights come from the file, for the
teacher's own architecture (built-in or ``factory``). The file is untrusted
input: a state dict is read with ``torch.load(..., weights_only=True)`` (no
code runs), an artifact with the artifact loader, and either must hold
exactly the tensors the architecture builds, with their shapes. Every problem
is one ``ConfigError`` naming ``teacher.pretrained``, raised before the study
is stored.

One difference is allowed, when the search space fixes
``architecture.from_teacher.new_head`` to true: the head (the last layer with
weights) may classify another number of classes than the dataset has. The
teacher is then built for the file's classes, and ``from_teacher`` students
build their head for the dataset's (transfer to a new task).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch

from fedsearch._errors import ConfigError, FedsearchError
from fedsearch.components import FROM_TEACHER, Architecture, Weights
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import ARCHITECTURE_SLOT, NONE
from fedsearch.trial._model_io import load_model
from fedsearch.trial._student import head_names

FIELD = "teacher.pretrained"
Fail = Callable[[str], NoReturn]
"""Raises the one-line ``ConfigError`` of a bad pretrained file."""
ARTIFACT_MAGIC = b"FSZ"
"""First bytes of a fedsearch artifact (``fedsearch/artifact``)."""


def pretrained_path(study: ResolvedStudy) -> Path | None:
    """The pretrained teacher's file, relative to the study file; None when it trains."""
    teacher = study.config.teacher
    if teacher is None or teacher.pretrained is None:
        return None
    return Path(study.source).parent / teacher.pretrained


@dataclass(frozen=True)
class PretrainedWeights:
    """The pretrained teacher's weights and the number of classes its head has.

    Attributes:
        weights: Its state, checked against its architecture.
        num_classes: Its head's classes: the dataset's, or the file's when a
            new head transfers it to a task with another number of classes.
    """

    weights: Weights
    num_classes: int


def load_pretrained_weights(
    study: ResolvedStudy, input_shape: tuple[int, ...], num_classes: int
) -> PretrainedWeights:
    """The pretrained teacher's weights, checked against its architecture.

    Args:
        study: A study whose ``[teacher]`` names a ``pretrained`` file.
        input_shape: The dataset's input shape.
        num_classes: The dataset's class count.

    Raises:
        ConfigError: The file is missing, is neither a state dict nor an
            artifact, its tensors differ from the architecture's (beyond the
            head's class count when the space fixes a new head), or its
            classes differ from the dataset's in a space that distils.
    """
    path = pretrained_path(study)
    assert path is not None and study.teacher_architecture is not None
    fail = _failer(study.source)
    if not path.is_file():
        fail(
            f"pretrained teacher file {path} does not exist; write it first (a state dict "
            "with torch.save(model.state_dict(), path), or an artifact of `fedsearch export`) "
            "or fix the path (relative to the study file)"
        )
    architecture = study.teacher_architecture.build()
    assert isinstance(architecture, Architecture)
    torch.manual_seed(study.config.seed)
    model = architecture.build(tuple(input_shape), num_classes)
    state = _read_state(path, study, fail)
    classes = _head_classes(model, state)
    if classes not in (None, num_classes):
        torch.manual_seed(study.config.seed)
        other = architecture.build(tuple(input_shape), classes)
        if not _problems(state, other.state_dict()):  # it fits, but for other classes
            if not new_head_fixed(study):
                fail(
                    f"{path} classifies {classes} classes and the dataset has {num_classes}; "
                    'to transfer it with a new head set "architecture.from_teacher.new_head" '
                    "= { value = true } in the search space, or give weights for this dataset"
                )
            _refuse_distillation(study, path, classes, num_classes, fail)
            model, num_classes = other, classes
    expected = model.state_dict()
    _check_tensors(path, architecture.name, state, expected, fail)
    model.load_state_dict({name: state[name].to(expected[name].dtype) for name in expected})
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return PretrainedWeights(weights, num_classes)


def new_head_fixed(study: ResolvedStudy) -> bool:
    """Whether every ``from_teacher`` student of the space gets a new head."""
    if FROM_TEACHER not in study.space.slots.get(ARCHITECTURE_SLOT, []):
        return False
    dimensions = study.space.dimensions[ARCHITECTURE_SLOT, FROM_TEACHER]
    return any(
        dim.field == "new_head" and dim.distribution is None and dim.value is True
        for dim in dimensions
    )


def _head_classes(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> int | None:
    """The classes of the file's head (its first dimension), None when it has no such tensor."""
    expected = model.state_dict()
    for name in head_names(model):
        if name in state and state[name].ndim >= 1 and expected[name].ndim == state[name].ndim:
            return int(state[name].shape[0])
    return None


def _refuse_distillation(
    study: ResolvedStudy, path: Path, classes: int, num_classes: int, fail: Fail
) -> None:
    """A teacher of other classes has nothing to distil into this task's students."""
    if any(name != NONE for name in study.space.slots.get("distill", [])):
        fail(
            f"{path} classifies {classes} classes and the dataset has {num_classes}: "
            'distilling from it needs the same classes; set slots.distill = ["none"] '
            "(from_teacher with a new head transfers it)"
        )


def _failer(source: str) -> Fail:
    def fail(message: str) -> NoReturn:
        raise ConfigError(message, source=source, field=FIELD)

    return fail


def _read_state(path: Path, study: ResolvedStudy, fail: Fail) -> Mapping[str, torch.Tensor]:
    data = path.read_bytes()
    if data.startswith(ARTIFACT_MAGIC):
        try:
            return load_model(data, study.registry).state_dict()
        except FedsearchError as error:
            fail(f"{path} is not a usable fedsearch artifact: {error}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # untrusted bytes: the unpickler raises many kinds
        text = str(error).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        fail(
            f"{path} is neither a PyTorch state dict (torch.load with weights_only=True: "
            f"{first}) nor a fedsearch artifact; save model.state_dict() with torch.save"
        )
    if (
        isinstance(state, Mapping)
        and "state_dict" in state
        and isinstance(state["state_dict"], Mapping)
    ):
        state = state["state_dict"]  # the usual checkpoint layout
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        fail(
            f"{path} holds a {type(state).__name__}, not a state dict of named tensors; "
            "save model.state_dict() with torch.save"
        )
    return state


def _check_tensors(
    path: Path,
    architecture: str,
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    fail: Fail,
) -> None:
    if problems := _problems(state, expected):
        fail(
            f"{path} does not fit the teacher's architecture {architecture!r} on this dataset: "
            f"{'; '.join(problems)}; give the weights of that architecture, or change "
            "teacher.architecture to the one the file was trained with"
        )


def _problems(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors of ``state`` (a few of each)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{name} {tuple(state[name].shape)} (expected {tuple(expected[name].shape)})"
        for name in set(state) & set(expected)
        if tuple(state[name].shape) != tuple(expected[name].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(
            f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}"
        )
    if wrong:
        problems.append(f"wrong shape {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
    return problems
