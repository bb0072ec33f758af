"""The privacy contract: components that add calibrated noise say what they guarantee."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Literal

Sampling = Literal["poisson", "fixed_size"]
Accountant = Literal["rdp", "pld"]


@dataclass(frozen=True)
class DpParameters:
    """What a differentially private run did, enough to account for it.

    The unit of privacy is one client (client-level DP, McMahan et al. 2018).

    Attributes:
        noise_multiplier: Standard deviation of the Gaussian noise added to the
            sum of clipped updates, divided by the clip norm (``z``).
        clip_norm: L2 norm every client's update is clipped to (the initial
            one under adaptive clipping; the guarantee does not depend on it).
        sampling: ``poisson`` (each client joins a round independently with
            probability ``sampling_rate``) or ``fixed_size`` (``sample_size``
            clients drawn without replacement).
        sampling_rate: Poisson probability, or ``sample_size / num_clients``.
        num_clients: How many clients exist.
        sample_size: Clients per round under ``fixed_size``; None under Poisson.
        rounds: How many rounds ran.
        delta: Target delta of the (epsilon, delta) guarantee.
        accountant: ``rdp`` or ``pld`` (dp-accounting's accountants).
        level: ``central`` (trusted server adds the noise) or ``local``
            (every client adds noise to its own update).
    """

    noise_multiplier: float
    clip_norm: float
    sampling: Sampling
    sampling_rate: float
    num_clients: int
    rounds: int
    delta: float
    accountant: Accountant
    sample_size: int | None = None
    level: Literal["central", "local"] = "central"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (trial user attributes)."""
        return asdict(self)


class DifferentiallyPrivate(ABC):
    """Mixin of a strategy or middleware that makes a run differentially private.

    The trial asks ``dp_parameters`` after the run and records the guarantee
    that ``dp-accounting`` computes from them (``fedsearch.trial``).
    """

    @abstractmethod
    def dp_parameters(self, num_clients: int, fraction: float, rounds: int) -> DpParameters:
        """The parameters of the run this component took part in.

        Args:
            num_clients: How many clients exist.
            fraction: The federation's sampling fraction.
            rounds: How many rounds ran.
        """
