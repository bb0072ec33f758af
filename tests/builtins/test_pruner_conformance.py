"""The built-in pruner passes the public conformance suite in a real tiny study."""

from __future__ import annotations

from fedsearch_builtins.pruners import ParetoASHA

from fedsearch.testing import PrunerTestCase


class TestParetoASHA(PrunerTestCase):
    pruner_class = ParetoASHA
    params = {"reduction_factor": 2, "min_trials": 2}


class TestParetoASHACrowding(PrunerTestCase):
    pruner_class = ParetoASHA
    params = {"reduction_factor": 3, "min_trials": 3, "tie_break": "crowding"}
    n_trials = 5
