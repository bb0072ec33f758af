"""The ``from_teacher`` student: the study's teacher, its trained weights, then compressed.

``slots.architecture = ["from_teacher", "mlp"]`` lets the search start a student
from the teacher (its architecture and weights) and prune, quantize or
factorize it with federated fine-tuning, beside smaller students trained from
scratch or distilled. The trial builds it (``fedsearch.trial``): this class
holds its params and refuses to build alone, since it needs the teacher.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from fedsearch._errors import ConfigError
from fedsearch.components._architecture import Architecture
from fedsearch.components._params import ComponentParams

FROM_TEACHER = "from_teacher"
"""Name of the student that starts from the teacher's architecture and weights."""


class FromTeacherParams(ComponentParams):
    """How the student takes over the teacher."""

    new_head: bool = False
    """Start the classifier (the last layer with weights) afresh, built for the dataset's
    classes: transfer to a new task, which may have more or fewer classes than the teacher."""
    frozen: Annotated[int, Field(ge=0, le=64)] = 0
    """Leading layers with weights kept at the teacher's values (not trained, downloaded once);
    searchable, e.g. ``"architecture.from_teacher.frozen" = { low = 0, high = 2 }``."""


class FromTeacherArchitecture(Architecture):
    """The teacher's architecture with the teacher's trained weights (built by the trial).

    Every byte of the starting weights crosses the channel: the first round's
    downlink carries them (in delta mode a client's first model is always
    downloaded), and a trial starting from a teacher trained in the study is
    charged that teacher's training traffic, as distillation is.
    """

    name = FROM_TEACHER
    description = "the teacher's architecture and trained weights, compressed and fine-tuned"
    Params = FromTeacherParams

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """Refuse: the trial builds this student from the study's teacher.

        Raises:
            ConfigError: Always.
        """
        raise ConfigError(
            "the from_teacher student is built from the study's teacher by the trial; "
            "add a [teacher] table to the study (its weights are where the student starts)",
            field="slots.architecture",
        )
