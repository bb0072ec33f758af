"""Conformance suites that built-in and third-party plugins subclass in their own tests."""

from __future__ import annotations

from fedsearch.testing._architecture import DATASET_SHAPES, ArchitectureTestCase

__all__ = ["DATASET_SHAPES", "ArchitectureTestCase"]
