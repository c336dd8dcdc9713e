"""Job specifications users submit: pydantic models, loadable from YAML, validated on creation."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cluster.errors import ConfigError, one_line, read_yaml_mapping

LOOP_FIELDS = (  # the TrainingJob fields its training loop receives (the controller sends exactly these)
    "model", "dataset", "label", "categorical", "validation_fraction", "test_fraction", "seed", "hidden",
    "learning_rate", "class_weight", "batch_size", "epochs", "checkpoint_every", "trees", "max_depth",
    "early_stopping_rounds", "funds_related",
)
CONFIG_CLASHES = frozenset(LOOP_FIELDS) | {"workers", "device"}  # fields of the job: refused inside `config`
FEATURE_LOOP_FIELDS = ("input", "keys", "time_column", "amount_column", "windows_s", "statistics", "output",
                       "_input_root", "_output_root")  # the last two: the tenant's data roots, set at admission
BUILTIN_MODELS = {"logistic": "linear", "mlp": "mlp", "xgboost": "gbdt", "lightgbm": "gbdt"}  # -> algorithm class
DEFAULT_LEARNING_RATE = {"linear": 1e-3, "mlp": 1e-3, "gbdt": 0.05}
_DEVICE = re.compile(r"^(auto|cpu|gpu|npu)(:[A-Za-z0-9_.-]+)?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class JobState(str, enum.Enum):
    """A job's lifecycle. QUEUED -> STARTING (an attempt is being launched) -> RUNNING -> STOPPING
    (its attempt is being stopped: cancel, preemption, retry) -> one of the final states."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def finished(self) -> bool:
        return self in FINAL_STATES

    @property
    def active(self) -> bool:
        """Whether an attempt of the job may hold devices in this state."""
        return self in (JobState.STARTING, JobState.RUNNING, JobState.STOPPING)


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})

# The one table of allowed transitions; the store refuses any other. STOPPING -> QUEUED is a
# preempted or retried job whose old attempt has released its devices; STARTING -> QUEUED is a
# launch that could not reserve its devices (the snapshot was stale).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.REJECTED, JobState.FAILED}),
    JobState.STARTING: frozenset({JobState.RUNNING, JobState.STOPPING, JobState.QUEUED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.STOPPING, JobState.SUCCEEDED, JobState.FAILED}),
    JobState.STOPPING: frozenset({JobState.QUEUED, JobState.CANCELLED, JobState.FAILED, JobState.SUCCEEDED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.REJECTED: frozenset(),
}


def check_transition(current: JobState, new: JobState) -> None:
    """Raise ValueError naming both states unless `current -> new` is in TRANSITIONS."""
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise ValueError(f"state: {current.value} -> {new.value} is not allowed; from {current.value}: {allowed}")


class TrainingJob(BaseModel):
    """A training job: what to train on which data, how big, how urgent, and how to recover.

    `model` is a built-in model (`logistic`, `mlp`, `xgboost`, `lightgbm`) or None with `train_fn`
    (a function run on every worker with its config dict, in Ray Train). `device` is `auto`, `cpu`,
    `gpu`, `npu` or `gpu:<model>` (e.g. `gpu:A100`). `dataset` is a CSV or Parquet file, a directory
    of them, or a URI; `categorical` lists the feature columns to one-hot encode (any other
    non-numeric column is refused at submission). Preprocessing (imputation, scaling, one-hot) is
    fitted on the training split only and travels inside the exported model.

    Tree models grow at most `trees` boosting rounds of depth `max_depth`, stop early when the
    validation AUC has not improved for `early_stopping_rounds` rounds, and report (and
    checkpoint) in `epochs` blocks of rounds. `learning_rate` defaults to 1e-3 for the torch models
    and 0.05 for the tree models.

    `clusters` and `sites`, when given, restrict where the job may run (registered cluster names,
    `local` for the server's own cluster; site names); a job whose clusters are all lost waits.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str
    tenant: str = "default"
    user: str = "unknown"
    model: Literal["logistic", "mlp", "xgboost", "lightgbm"] | None = "mlp"
    train_fn: Callable[[dict], Any] | None = Field(default=None, exclude=True)
    dataset: str | None = None
    label: str | None = None
    categorical: list[str] = Field(default_factory=list)
    workers: int = Field(default=1, ge=1, le=1024)
    device: str = "auto"
    latency: Literal["realtime", "interactive", "batch"] = "batch"
    priority: int = Field(default=0, ge=-100, le=100)
    preemptible: bool = True
    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float | None = Field(default=None, gt=0, le=10)
    trees: int = Field(default=500, ge=1, le=100_000)
    max_depth: int = Field(default=3, ge=1, le=16)
    early_stopping_rounds: int = Field(default=50, ge=1)
    hidden: list[int] = Field(default_factory=lambda: [256, 256, 128])
    class_weight: Literal["balanced", "none"] = "balanced"
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 0
    max_failures: int = Field(default=3, ge=0, le=100)
    checkpoint_every: int = Field(default=1, ge=1)
    funds_related: bool = True
    data_site: str | None = None
    clusters: list[str] = Field(default_factory=list, max_length=64)
    sites: list[str] = Field(default_factory=list, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("clusters", "sites")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"{name!r}: each must be 1-63 lowercase letters, digits or '-'")
        return sorted(set(value))

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        clashes = sorted(set(value) & CONFIG_CLASHES)
        if clashes:
            raise ValueError(f"{clashes[0]!r} is a field of the job itself; set {clashes[0]}=... on the job, "
                             "not inside config")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-63 lowercase letters, digits or '-', starting with a letter or digit")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError("must be auto, cpu, gpu, npu or KIND:MODEL such as gpu:A100")
        return value

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, value: list[int]) -> list[int]:
        if not 1 <= len(value) <= 8 or not all(1 <= h <= 8192 for h in value):
            raise ValueError("must list 1-8 layer widths, each 1-8192")
        return value

    @model_validator(mode="after")
    def _model_or_fn(self, info: ValidationInfo) -> TrainingJob:
        has_fn = self.train_fn is not None or bool((info.context or {}).get("has_train_fn"))
        if not has_fn and self.model is None:
            raise ValueError("model: give a built-in model (logistic, mlp, xgboost, lightgbm) or a train_fn")
        if has_fn:
            self.model = None
        elif not self.dataset or not self.label:
            raise ValueError("dataset and label: a built-in model needs both")
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATE.get(self.algorithm, 1e-3)
        return self

    @property
    def algorithm(self) -> str:
        """The scheduler's algorithm class for this job."""
        return BUILTIN_MODELS.get(self.model or "", "generic")

    def device_kinds(self) -> tuple[tuple[str, ...], str | None]:
        """(allowed device kinds, pinned model or None) from `device`."""
        kind, _, model = self.device.partition(":")
        if kind == "auto":
            return ("cpu", "gpu", "npu"), None
        return (kind,), model or None


def load_job_yaml(path: str | Path) -> TrainingJob:
    """A TrainingJob from a YAML file; ConfigError with one line naming the field when invalid."""
    file = Path(path)
    data = read_yaml_mapping(file, "job file", "job fields (name, dataset, label, ...)")
    if "train_fn" in data:
        raise ConfigError(f"{file}: train_fn: a function can only be given from Python (Client.submit)")
    if data.get("dataset") and not Path(data["dataset"]).is_absolute():
        data["dataset"] = str((file.parent / data["dataset"]).resolve())
    try:
        return TrainingJob(**data)
    except ValidationError as err:
        raise one_line(err, str(file)) from None


FEATURE_STATS = ("count", "sum", "mean", "max")


class FeatureJob(BaseModel):
    """A feature-generation job (JR/T 0202 4.4.4.2): for every event of `input` (CSV or Parquet),
    the count, sum, mean and maximum of `amount_column` over the previous events of the same key
    within each window, for each column of `keys` (card, merchant, ...); written as Parquet to
    `output` (the input's columns and, per key, window and statistic, `<key>_<stat>_<w>s`), rows
    in the input's order. `device` is auto, cpu or gpu; `data_site` is where the input lives,
    which the scheduler weighs against moving it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    tenant: str = "default"
    user: str = "unknown"
    input: str
    keys: list[str] = Field(min_length=1, max_length=8)
    time_column: str
    amount_column: str
    windows_s: list[float] = Field(default_factory=lambda: [60.0, 3600.0, 86400.0], min_length=1, max_length=16)
    statistics: list[Literal["count", "sum", "mean", "max"]] = Field(default_factory=lambda: list(FEATURE_STATS),
                                                                     min_length=1)
    output: str
    device: Literal["auto", "cpu", "gpu"] = "auto"
    data_site: str | None = None
    priority: int = Field(default=0, ge=-100, le=100)
    latency: Literal["realtime", "interactive", "batch"] = "batch"

    _name = field_validator("name")(TrainingJob._name.__func__)

    @field_validator("windows_s")
    @classmethod
    def _windows(cls, value: list[float]) -> list[float]:
        if not all(0 < w <= 366 * 86400 for w in value):
            raise ValueError("each window must be > 0 and at most a year, in seconds")
        return value

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        if not value.endswith(".parquet"):
            raise ValueError("must be a .parquet file")
        return value

    def device_kinds(self) -> tuple[str, ...]:
        """The kernel has a CPU and a CUDA path: `auto` lets the scheduler choose between them."""
        return ("cpu", "gpu") if self.device == "auto" else (self.device,)


def load_features_yaml(path: str | Path) -> FeatureJob:
    """A FeatureJob from YAML (relative input and output paths resolved against the file's
    folder); ConfigError with one line naming the field when invalid."""
    file = Path(path)
    data = read_yaml_mapping(file, "features file", "fields (name, input, keys, time_column, ...)")
    for key in ("input", "output"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str((file.parent / data[key]).resolve())
    try:
        return FeatureJob(**data)
    except ValidationError as err:
        raise one_line(err, str(file)) from None
