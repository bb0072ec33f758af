"""Every built-in strategy passes the public conformance suite."""

from __future__ import annotations

from fedsearch_builtins.privacy import DpFedAvg
from fedsearch_builtins.robust import Krum, Median, MultiKrum, NormBounding, TrimmedMean
from fedsearch_builtins.server_optimizers import FedAdagrad, FedAdam, FedAvgM, FedProx, FedYogi
from fedsearch_builtins.strategies import FedAvg

from fedsearch.testing import StrategyTestCase


class TestFedAvg(StrategyTestCase):
    strategy_class = FedAvg


class TestFedProx(StrategyTestCase):
    strategy_class = FedProx
    params = {"mu": 0.1}


class TestFedAvgM(StrategyTestCase):
    strategy_class = FedAvgM
    server_optimizer = True


class TestFedAdagrad(StrategyTestCase):
    strategy_class = FedAdagrad
    server_optimizer = True


class TestFedAdam(StrategyTestCase):
    strategy_class = FedAdam
    server_optimizer = True
    params = {"server_lr": 0.05}


class TestFedYogi(StrategyTestCase):
    strategy_class = FedYogi
    server_optimizer = True


class TestKrum(StrategyTestCase):
    strategy_class = Krum
    weighs_by_examples = False


class TestMultiKrum(StrategyTestCase):
    strategy_class = MultiKrum
    weighs_by_examples = False


class TestMedian(StrategyTestCase):
    strategy_class = Median
    weighs_by_examples = False


class TestTrimmedMean(StrategyTestCase):
    strategy_class = TrimmedMean
    weighs_by_examples = False
    params = {"trim_fraction": 0.25}


class TestNormBounding(StrategyTestCase):
    strategy_class = NormBounding
    params = {"norm_bound": 0.5}


class TestDpFedAvg(StrategyTestCase):
    strategy_class = DpFedAvg
    weighs_by_examples = False
    params = {"noise_multiplier": 0.5, "clip_norm": 0.5}


class TestDpFedAvgAdaptiveFixedSize(StrategyTestCase):
    strategy_class = DpFedAvg
    weighs_by_examples = False
    params = {"noise_multiplier": 0.5, "adaptive": True, "sampling": "fixed_size"}
