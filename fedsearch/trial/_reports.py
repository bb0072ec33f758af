"""Figures the study's middleware measures on the test split (user attributes only)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedsearch.components import Middleware
from fedsearch.federated import FederatedData
from fedsearch.host import ComponentSpec


def middleware_reports(
    specs: Sequence[ComponentSpec], model: torch.nn.Module, data: FederatedData
) -> dict[str, float]:
    """Every middleware's ``test_report`` of the trial's final model on the test split."""
    reports: dict[str, float] = {}
    for spec in specs:
        middleware = spec.build()
        assert isinstance(middleware, Middleware)
        reports |= middleware.test_report(model.eval(), data.test_inputs, data.test_labels)
    return reports
