"""Secure aggregation built-ins: SecAgg+ (``secagg_plus``) and CKKS (``ckks``) aggregation."""

from __future__ import annotations

from fedsearch import Registrar, hookimpl
from fedsearch_builtins.secure_aggregation._ckks import CkksAggregator
from fedsearch_builtins.secure_aggregation._secagg_plus import SecAggPlus

__all__ = ["CkksAggregator", "SecAggPlus"]


@hookimpl
def fedsearch_register_components(register: Registrar) -> None:
    """Register SecAgg+ and CKKS aggregation."""
    register.secure_aggregator(SecAggPlus)
    register.secure_aggregator(CkksAggregator)
