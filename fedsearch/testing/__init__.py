"""Conformance suites that built-in and third-party plugins subclass in their own tests."""

from __future__ import annotations

from fedsearch.testing._architecture import DATASET_SHAPES, ArchitectureTestCase
from fedsearch.testing._codec_case import CodecTestCase
from fedsearch.testing._compressor_case import CompressorTestCase
from fedsearch.testing._middleware_case import MiddlewareTestCase
from fedsearch.testing._pruner_case import PrunerTestCase
from fedsearch.testing._strategy_case import StrategyTestCase

__all__ = [
    "DATASET_SHAPES",
    "ArchitectureTestCase",
    "CodecTestCase",
    "CompressorTestCase",
    "MiddlewareTestCase",
    "PrunerTestCase",
    "StrategyTestCase",
]
