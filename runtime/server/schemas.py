"""The API's request bodies and response shapes: every model a route reads or returns."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, Field

from runtime.server.domain.errors import Invalid
from runtime.server.domain.reports import ARTIFACT_EVENTS
from runtime.serving.deploy import ServeSettings
from runtime.store import JobRecord

MAX_TRAIN_FN_BYTES = 16 * 2**20


class Submission(BaseModel):
    """The body of POST /jobs: a TrainingJob's fields, and a user function as cloudpickled bytes
    (base64) with its source for the provenance record. The server stores and hashes the bytes;
    only Ray workers load them."""

    kind: Literal["training", "features"] = "training"
    spec: dict[str, Any]
    train_fn_b64: str | None = Field(default=None, max_length=MAX_TRAIN_FN_BYTES * 4 // 3 + 4)
    train_fn_source: str | None = Field(default=None, max_length=1_000_000)
    train_fn_name: str | None = Field(default=None, max_length=400)

    def train_fn(self) -> bytes | None:
        """The function's pickled bytes; Invalid when `train_fn_b64` is not base64."""
        if self.train_fn_b64 is None:
            return None
        try:
            return base64.b64decode(self.train_fn_b64, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("train_fn_b64: not base64; send cloudpickle.dumps(fn) base64-encoded") from None


class NewUser(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    role: str
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    expires_s: float = Field(default=86400.0, gt=0)


class NewToken(BaseModel):
    user: str | None = None
    expires_s: float = Field(default=86400.0, gt=0)
    label: str = Field(default="", max_length=128)


class QuotaLimits(BaseModel):
    """Caps; a field left out is not capped."""

    model_config = {"extra": "forbid"}
    cpu: float | None = Field(default=None, ge=0, le=1e6)
    gpu: float | None = Field(default=None, ge=0, le=1e6)
    npu: float | None = Field(default=None, ge=0, le=1e6)
    jobs: int | None = Field(default=None, ge=0, le=1e6)


class DeployRequest(BaseModel):
    """A registry version to serve: its registry (a directory on the server), name and version
    (number or stage), and the serving settings (signatures verify with the server's pinned key)."""

    model_config = {"extra": "forbid"}
    registry: str
    model: str
    version: int | Literal["production", "staging"] = "production"
    settings: ServeSettings = Field(default_factory=ServeSettings)


class RegistryChange(BaseModel):
    """A stage change in a registry on the server: the version to promote or withdraw (rollback
    needs none) and, to withdraw, why."""

    model_config = {"extra": "forbid"}
    registry: str
    model: str
    version: int | None = None
    reason: str = Field(default="", max_length=2000)


class NewCluster(BaseModel):
    """A Ray cluster to register: its job-submission address, where it is, the storage path at
    which its nodes see the server's runs directory, and its Ray auth token (kept in the server's
    secrets store, never shown)."""

    model_config = {"extra": "forbid"}
    name: str
    address: str
    site: str | None = None
    tier: Literal["center", "edge"] = "center"
    storage: str | None = None
    token: str | None = None
    links: dict[str, dict[str, float]] = Field(default_factory=dict)


class ArtifactEvent(BaseModel):
    model_config = {"extra": "forbid"}
    type: str = Field(pattern="^(" + "|".join(ARTIFACT_EVENTS) + ")$")
    detail: dict[str, Any] = Field(default_factory=dict, max_length=32)


def job_view(record: JobRecord) -> dict:
    """A job as the API shows it (the user's code bytes are never sent back)."""
    return {"id": record.id, "name": record.name, "tenant": record.tenant, "user": record.user,
            "state": record.state.value, "attempts": record.attempts, "failures": record.failures,
            "created": record.created, "updated": record.updated, "placement": record.placement,
            "progress": record.progress, "result": record.result, "error": record.error,
            "cancel_requested": record.cancel_requested, "train_fn_sha256": record.train_fn_sha256}
