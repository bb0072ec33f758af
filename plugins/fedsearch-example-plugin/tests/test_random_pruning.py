"""The example plugin's own tests: fedsearch's public conformance suite."""

from __future__ import annotations

from fedsearch_random_pruning import RandomPruning

from fedsearch.testing import CompressorTestCase


class TestRandomPruning(CompressorTestCase):
    compressor_class = RandomPruning
    params = {"sparsity": 0.5, "seed": 3}


class TestRandomPruningOnAnMLP(CompressorTestCase):
    compressor_class = RandomPruning
    architecture = "mlp"
    architecture_params = {"widths": [12]}
    input_shape = (10,)
