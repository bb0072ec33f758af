"""Privacy accounting of a trial with Google's ``dp-accounting`` (RDP and PLD)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fedsearch._errors import ConfigError
from fedsearch.components import DifferentiallyPrivate, DpParameters
from fedsearch.federated import FederatedRun

if TYPE_CHECKING:
    import dp_accounting


def dp_event(
    parameters: DpParameters,
) -> tuple[dp_accounting.DpEvent, dp_accounting.NeighboringRelation]:
    """The dp-accounting event of a run, and the neighbouring relation it is stated under.

    - central, Poisson sampling: ``PoissonSampledDpEvent(q, Gaussian(z))`` per
      round, add-or-remove-one client;
    - central, fixed size: ``SampledWithoutReplacementDpEvent(N, m, Gaussian(z / 2))``
      per round, replace-one client (replacing a client moves the clipped sum
      by up to ``2 C``, so the noise over the sensitivity is ``z / 2``);
    - local: ``Gaussian(z / 2)`` per round (any two clipped updates differ by up
      to ``2 C``; no amplification, the server sees who sent what).
    """
    # imported on use: dp-accounting (with SciPy) takes about 0.7 s to import
    import dp_accounting

    NeighborRel = dp_accounting.NeighboringRelation
    z = parameters.noise_multiplier
    if parameters.level == "local":
        event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(z / 2.0)
        relation = NeighborRel.ADD_OR_REMOVE_ONE
    elif parameters.sampling == "poisson":
        event = dp_accounting.PoissonSampledDpEvent(
            parameters.sampling_rate, dp_accounting.GaussianDpEvent(z)
        )
        relation = NeighborRel.ADD_OR_REMOVE_ONE
    else:
        assert parameters.sample_size is not None
        event = dp_accounting.SampledWithoutReplacementDpEvent(
            parameters.num_clients, parameters.sample_size, dp_accounting.GaussianDpEvent(z / 2.0)
        )
        relation = NeighborRel.REPLACE_ONE
    return dp_accounting.SelfComposedDpEvent(event, parameters.rounds), relation


def compute_epsilon(parameters: DpParameters) -> float:
    """Epsilon at ``parameters.delta`` from dp-accounting's RDP or PLD accountant.

    Raises:
        ConfigError: The accountant does not support the run's sampling
            (dp-accounting's PLD has no sampling without replacement).
    """
    from dp_accounting import pld, rdp

    event, relation = dp_event(parameters)
    accountant: dp_accounting.PrivacyAccountant
    if parameters.accountant == "pld":
        accountant = pld.PLDAccountant(relation)
    else:
        accountant = rdp.RdpAccountant(neighboring_relation=relation)
    if not accountant.supports(event):
        raise ConfigError(
            f"the {parameters.accountant} accountant cannot account for {parameters.sampling} "
            'client sampling; use accountant = "rdp" or sampling = "poisson"'
        )
    quiet = logging.getLogger("absl")  # RDP orders it cannot evaluate are dropped, with a warning
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        accountant.compose(event)
        return float(accountant.get_epsilon(parameters.delta))
    finally:
        quiet.setLevel(level)


def run_dp_parameters(run: FederatedRun, rounds: int) -> DpParameters | None:
    """The DP parameters of a run: its strategy's (central) first, else its middleware's."""
    federation = run.federation
    for component in (run.strategy, *run.middleware):
        if isinstance(component, DifferentiallyPrivate):
            return component.dp_parameters(federation.num_clients, federation.fraction, rounds)
    return None


def privacy_attributes(parameters: DpParameters | None) -> dict[str, Any]:
    """The trial's privacy user attributes (none when the run is not DP)."""
    if parameters is None:
        return {}
    return {
        "epsilon": compute_epsilon(parameters),
        "delta": parameters.delta,
        "noise_multiplier": parameters.noise_multiplier,
        "clip_norm": parameters.clip_norm,
        "sampling_rate": parameters.sampling_rate,
        "sampling": parameters.sampling,
        "accountant": parameters.accountant,
        "rounds": parameters.rounds,
        "dp": parameters.as_dict(),
    }
