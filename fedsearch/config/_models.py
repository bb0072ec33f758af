"""Pydantic models of study files (``studies/*.toml``) and search-space files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from fedsearch.config._strict import StrictModel
from fedsearch.config._tiers import TiersConfig
from fedsearch.config._warm_start import WarmStartConfig

DEFAULT_OUTPUT_DIR = "runs"
DEFAULT_SEARCH_SPACE = "../search_spaces/default.toml"
SEED_MAX = 2**32 - 1
"""Largest seed: scikit-learn and numpy's legacy seeding take 32-bit seeds."""


class ComponentRef(StrictModel):
    """A component chosen by name, with its params (validated against its ``Params``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DatasetConfig(ComponentRef):
    """The dataset, and the share of its training part held out for validation."""

    name: str = "digits"
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)


class EarlyAbortConfig(StrictModel):
    """Stop hopeless trials: validation accuracy below a floor after a round prunes the trial."""

    after_round: int = Field(ge=1)
    """First round whose validation accuracy is checked (the first evaluated one from it on)."""
    min_accuracy: float = Field(ge=0.0, le=1.0)
    """Trials whose validation accuracy is below this are stopped and recorded as pruned."""


class FederationConfig(StrictModel):
    """The federated simulation every trial (and the teacher) runs in.

    A codec is one component or a list of them applied in order (a pipeline,
    ``[{ name = "topk" }, { name = "qsgd" }]``). ``downlink = "model"`` sends the
    global model to the clients of a round; ``"delta"`` sends each client the
    difference between the global model and what that client last received.
    ``middleware`` lists payload transforms (``[{ name = "clip_update", params =
    { max_norm = 1.0 } }]``), applied in order on every client and server.
    """

    num_clients: int = Field(10, ge=1)
    rounds: int = Field(10, ge=1)
    fraction: float = Field(0.5, gt=0.0, le=1.0)
    local_epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.05, gt=0.0)
    max_grad_norm: float | None = Field(None, gt=0.0)
    """Clip each local step's gradient (all trained tensors together) to this L2
    norm, as ``torch.nn.utils.clip_grad_norm_``; none: unclipped. It bounds every
    step at ``learning_rate * max_grad_norm``, which keeps distillation at high
    temperatures and 2-bit fake quantization from jumping across the loss surface."""
    eval_every: int = Field(1, ge=1)
    execution: Literal["auto", "sequential", "vectorized", "parallel"] = "auto"
    """How a round's clients train: ``auto`` picks by measured rules (see the README)."""
    client_workers: int | None = Field(None, ge=1)
    """Worker processes of ``parallel`` execution; the usable cores when omitted."""
    early_abort: EarlyAbortConfig | None = None
    partition: ComponentRef = ComponentRef(name="iid")
    strategy: ComponentRef = ComponentRef(name="fedavg")
    uplink_codec: ComponentRef | list[ComponentRef] = ComponentRef(name="float32")
    downlink_codec: ComponentRef | list[ComponentRef] = ComponentRef(name="float32")
    downlink: Literal["model", "delta"] = "model"
    initial_model: Literal["download", "seeded"] = "download"
    """Delta downlink: a client's first model is downloaded in full and counted
    (``download``), or built from the study seed with no transfer (``seeded``)."""
    middleware: list[ComponentRef] = Field(default_factory=list)
    """Payload transforms around the channel, applied in order (clipping, noise)."""
    secure_aggregation: ComponentRef | None = None
    """The uplink as a secure aggregation protocol (``secagg_plus``, ``ckks``); none: plain."""

    @model_validator(mode="after")
    def _early_abort_within_rounds(self) -> FederationConfig:
        if self.early_abort is not None and self.early_abort.after_round > self.rounds:
            raise ValueError(
                f"early_abort.after_round ({self.early_abort.after_round}) is past the last "
                f"round ({self.rounds}); lower after_round or raise rounds"
            )
        return self


class TeacherConfig(StrictModel):
    """The dense model trained federatedly once per study (and cached), or given by file."""

    architecture: ComponentRef
    rounds: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0.0)
    pretrained: str | None = Field(None, min_length=1)
    """A state dict (``torch.save``) or fedsearch artifact of the architecture, relative
    to the study file: the teacher is loaded from it instead of trained."""

    @model_validator(mode="after")
    def _trained_or_pretrained(self) -> TeacherConfig:
        if self.pretrained is not None and (self.rounds or self.learning_rate):
            raise ValueError("a pretrained teacher is not trained: remove rounds and learning_rate")
        return self


class DimensionConfig(StrictModel):
    """One search dimension: a range, a list of choices, or a fixed value."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = Field(None, gt=0)
    # float first: a non-finite bound is reported as such, not as "not an integer";
    # pydantic still keeps integers as int (exact matches win in a union)
    log: bool = False
    choices: list[Any] | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one_form(self) -> DimensionConfig:
        forms = [self.low is not None or self.high is not None, self.choices is not None]
        forms.append("value" in self.model_fields_set)
        if sum(forms) != 1:
            raise ValueError("give exactly one of: low and high, choices, or value")
        if forms[0]:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is above high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
            if self.step is not None and self.step > self.high - self.low > 0:
                raise ValueError(
                    f"step ({self.step}) is larger than the range {self.low}..{self.high}; "
                    "use a smaller step or a fixed value"
                )
        if self.choices is not None and not self.choices:
            raise ValueError("choices must not be empty")
        return self


class SearchSpaceConfig(StrictModel):
    """A search-space file: candidate components per slot and dimension overrides.

    ``slots`` maps ``architecture`` and each compressor stage (``prune``,
    ``quantize``, ``distill``, ``factorize``) to candidate component names;
    ``"none"`` lets a stage be switched off. ``uplink_codec`` and
    ``downlink_codec`` list codec pipelines (``"topk+qsgd"``), ``strategy``
    server strategies that replace ``federation.strategy``, and ``middleware``
    a middleware run after ``federation.middleware`` (``"none"`` allowed).
    ``dimensions`` overrides the default search hints of component params by
    qualified name (``prune.magnitude.sparsity``, ``middleware.local_dp.clip_norm``).
    """

    slots: dict[str, list[str]] = Field(default_factory=dict)
    dimensions: dict[str, DimensionConfig] = Field(default_factory=dict)


class ConstraintsConfig(StrictModel):
    """Hard limits: trials that break one are marked infeasible and kept off the Pareto front."""

    max_model_bytes: int | None = Field(None, gt=0)
    min_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    max_comm_bytes: int | None = Field(None, gt=0)
    max_epsilon: float | None = Field(None, gt=0.0)
    """Largest epsilon of a differentially private trial (its recorded ``epsilon``)."""


class SearchConfig(StrictModel):
    """How the study searches.

    ``objectives`` enables extra objectives (``[{ name = "flops" }]``) after
    the three built in; ``constraints`` sets hard limits.
    """

    space: str = DEFAULT_SEARCH_SPACE
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(None, gt=0)
    sampler: ComponentRef = ComponentRef(name="nsga2")
    pruner: ComponentRef | None = None
    """Multi-fidelity pruning over rounds (``{ name = "pareto_asha" }``); off when omitted."""
    warm_start: WarmStartConfig | None = None
    """Start from an earlier study: its feasible front first, its trials as sampler history."""
    objectives: list[ComponentRef] = Field(default_factory=list)
    constraints: ConstraintsConfig = ConstraintsConfig()
    slots: dict[str, list[str]] = Field(default_factory=dict)
    dimensions: dict[str, DimensionConfig] = Field(default_factory=dict)


class WorkersConfig(StrictModel):
    """How worker processes share a study (none of it changes trial results).

    Attributes:
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds without a heartbeat after which a running trial is
            declared FAIL (its worker died) and retried by another worker.
        max_retry: How many times one stale trial is re-queued (same params).
        max_consecutive_failures: A worker stops with an error after this many
            trials in a row failed (a broken plugin would fail every trial).
        threads: PyTorch intra-op threads per worker process; 0 keeps torch's default.
    """

    heartbeat_interval: int = Field(10, ge=1)
    grace_period: int = Field(30, ge=2)
    max_retry: int = Field(2, ge=0)
    max_consecutive_failures: int = Field(5, ge=1)
    threads: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _grace_covers_heartbeats(self) -> WorkersConfig:
        if self.grace_period < 2 * self.heartbeat_interval:
            raise ValueError(
                f"grace_period ({self.grace_period}) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval}), or live trials are failed"
            )
        return self


class StudyConfig(StrictModel):
    """A study file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seeds numpy, torch, scikit-learn and the sampler (one 32-bit seed all of them accept)."""
    storage: str | None = None
    output_dir: str = DEFAULT_OUTPUT_DIR
    dataset: DatasetConfig = DatasetConfig()
    federation: FederationConfig = FederationConfig()
    teacher: TeacherConfig | None = None
    search: SearchConfig = SearchConfig()
    workers: WorkersConfig = WorkersConfig()
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    """Where data, models and clients compute: ``auto`` (a GPU if any, else the CPU),
    ``cpu``, ``cuda`` (every GPU, workers spread over them) or ``cuda:N``."""
    tiers: TiersConfig | None = None
    """Heterogeneous device tiers (``docs/heterogeneous-clients.md``); None: identical clients."""
