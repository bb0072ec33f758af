"""The trial's student: a fresh model of its family, or the teacher (``from_teacher``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.components import FROM_TEACHER, Architecture, Teacher
from fedsearch.components._from_teacher import FromTeacherParams
from fedsearch.federated import FederatedData, FederatedRun
from fedsearch.search._resolve import ResolvedStudy
from fedsearch.search._space import ComponentChoice


@dataclass(frozen=True)
class Student:
    """The model a trial trains and the architecture its artifact records.

    Attributes:
        architecture: The family that rebuilds the model (the teacher's for
            ``from_teacher``).
        model: The model, freshly initialised or holding the teacher's weights.
        from_teacher: Whether it starts from the teacher's trained weights.
        frozen: Names of the weights kept at their starting values.
    """

    architecture: Architecture
    model: nn.Module
    from_teacher: bool = False
    frozen: tuple[str, ...] = ()


def build_student(
    study: ResolvedStudy, data: FederatedData, teacher: Teacher | None, choice: ComponentChoice
) -> Student:
    """Build the selected student, seeded with the study seed.

    Raises:
        ConfigError: ``from_teacher`` in a study without a teacher, or more
            frozen layers than the teacher has.
    """
    registry = study.registry
    torch.manual_seed(study.config.seed)
    if choice.name != FROM_TEACHER:
        architecture = registry.create("architecture", choice.name, choice.params)
        assert isinstance(architecture, Architecture)
        return Student(architecture, architecture.build(data.input_shape, data.num_classes))
    if teacher is None or study.teacher_architecture is None:
        raise ConfigError(
            "the from_teacher student needs the study's teacher; add a [teacher] table",
            source=study.source,
            field="slots.architecture",
        )
    params = FromTeacherParams.model_validate(choice.params)
    architecture = study.teacher_architecture.build()
    assert isinstance(architecture, Architecture)
    model = architecture.build(data.input_shape, data.num_classes)
    _load_teacher(model, teacher.weights, new_head=params.new_head)
    layers = weighted_layers(model)
    if params.frozen >= len(layers):
        raise ConfigError(
            f"from_teacher freezes {params.frozen} layers, but the teacher has {len(layers)} "
            "with weights and at least the last must train; lower frozen",
            source=study.source,
            field="architecture.from_teacher.frozen",
        )
    if params.new_head:
        torch.manual_seed(study.config.seed)
        layers[-1].reset_parameters()  # type: ignore[operator]
    frozen_modules = {id(module) for module in layers[: params.frozen]}
    frozen = tuple(
        f"{path}.{name}" if path else name
        for path, module in model.named_modules()
        if id(module) in frozen_modules
        for name, _ in module.named_parameters(recurse=False)
    )
    return Student(architecture, model, from_teacher=True, frozen=frozen)


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor) and hasattr(
        module, "reset_parameters"
    )


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The layers with weights, in order: what ``frozen`` counts; the last is the head."""
    return [module for module in model.modules() if _has_weight(module)]


def head_names(model: nn.Module) -> tuple[str, ...]:
    """State-dict names of the head's own tensors (the last layer with weights)."""
    head = weighted_layers(model)[-1]
    for path, module in model.named_modules():
        if module is head:
            prefix = f"{path}." if path else ""
            return tuple(
                prefix + name for name in module.state_dict(keep_vars=True) if "." not in name
            )
    raise AssertionError("the head is one of the model's modules")  # pragma: no cover


def _load_teacher(model: nn.Module, weights: dict[str, torch.Tensor], *, new_head: bool) -> None:
    """Load the teacher's weights; with a new head, every tensor but the head's.

    The head is built for the dataset's classes, which may differ from the
    teacher's (transfer to a task with fewer or more classes); it starts afresh.
    """
    if not new_head:
        model.load_state_dict(weights)
        return
    head = set(head_names(model))
    result = model.load_state_dict(
        {name: tensor for name, tensor in weights.items() if name not in head}, strict=False
    )
    if set(result.missing_keys) != head or result.unexpected_keys:
        raise ConfigError(
            "the teacher's weights do not fit its architecture beside the head: missing "
            f"{sorted(set(result.missing_keys) - head)}, unexpected {result.unexpected_keys}; "
            "give the weights of teacher.architecture",
            field="teacher.pretrained",
        )


def student_run(run: FederatedRun, student: Student) -> FederatedRun:
    """``run`` for this student: one that starts from the teacher downloads it in full.

    A delta downlink with ``initial_model = "seeded"`` lets clients build their
    first model from the seed, which they cannot do for trained weights: such a
    student's first model is downloaded and counted instead. A student with
    frozen layers trains sequentially (the vectorized paths train every weight).
    """
    federation = run.federation
    update: dict[str, str] = {}
    if student.from_teacher and federation.initial_model != "download":
        update["initial_model"] = "download"
    if student.frozen and federation.execution != "sequential":
        update["execution"] = "sequential"  # the vectorized plans expect every weight
    if not update:
        return run
    return dataclasses.replace(run, federation=federation.model_copy(update=update))


FROZEN_DOWNLOAD = "frozen_layers"
"""Name of the one-time download of a student's frozen layers (each client, once)."""


def freeze(student: Student) -> dict[str, torch.Tensor]:
    """Turn the frozen parameters into non-persistent buffers; return their values.

    They leave the model's state dict, so they are neither trained nor sent in
    any round; each participating client downloads them once instead (the
    caller lists them as a one-time download, which the channel counts).
    """
    values = {}
    for name in student.frozen:
        path, _, leaf = name.rpartition(".")
        module = student.model.get_submodule(path)
        tensor = getattr(module, leaf).detach().clone()
        del module._parameters[leaf]
        module.register_buffer(leaf, tensor, persistent=False)
        values[name] = tensor
    return values


def unfreeze(student: Student, values: dict[str, torch.Tensor]) -> None:
    """Make the frozen buffers parameters again (for the artifact, which stores them)."""
    for name, tensor in values.items():
        path, _, leaf = name.rpartition(".")
        module = student.model.get_submodule(path)
        del module._buffers[leaf]
        module.register_parameter(leaf, nn.Parameter(tensor.clone()))
