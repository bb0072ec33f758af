"""The ``[search] warm_start`` table: start a study from an earlier study's results."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WarmStartConfig(BaseModel):
    """An earlier study whose feasible front is re-evaluated first and whose trials
    samplers that use history (TPE, GP, the RL controller) learn from.

    Attributes:
        study: Name of the earlier study.
        storage: Its storage URL; this study's storage when omitted.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    study: str = Field(min_length=1)
    storage: str | None = None
