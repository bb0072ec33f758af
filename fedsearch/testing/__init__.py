"""Conformance suites that built-in and third-party plugins subclass in their tests."""

from __future__ import annotations

from fedsearch.testing._compressor_case import CompressorTestCase

__all__ = ["CompressorTestCase"]
