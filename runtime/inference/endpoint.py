"""Deploying a signed artifact as replicas in Ray actors, placed by the scheduler.

Each replica is placed as its own one-worker job with the endpoint's latency class and site, so
`realtime` replicas go to an edge node at the site while one is free, and to the centre after.
Every replica verifies the artifact's signature before it opens the model (an actor that cannot
verify fails to start, and `deploy` raises). The ONNX Runtime execution provider follows the
device kind the replica was placed on (CUDA on GPU nodes, CANN on Ascend nodes, else CPU); the
GPU and NPU providers have not run here.

Payment decisions (JR/T 0202 4.3.5): with `thresholds={"block": 0.9, "hold": 0.7, "warn": 0.5}`,
`decide(rows)` answers block, hold (for confirmation), warn or pass per row.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import ray

import cluster
from runtime.artifacts.signing import verify_directory
from runtime.placement_to_ray import task_options
from schedulers.engine import schedule
from schedulers.policies import make_policy
from schedulers.types import JobRequest, Placement

DECISIONS = ("block", "hold", "warn")


def check_thresholds(thresholds: dict | None) -> dict | None:
    """Validate {"block": b, "hold": h, "warn": w} with 1 >= b >= h >= w >= 0."""
    if thresholds is None:
        return None
    unknown = set(thresholds) - set(DECISIONS)
    if unknown or set(thresholds) != set(DECISIONS):
        raise ValueError(f"thresholds: give exactly block, hold and warn (got {sorted(thresholds)})")
    b, h, w = (float(thresholds[k]) for k in DECISIONS)
    if not 1 >= b >= h >= w >= 0:
        raise ValueError(f"thresholds: need 1 >= block >= hold >= warn >= 0, got {b}, {h}, {w}")
    return {"block": b, "hold": h, "warn": w}


@ray.remote
class ModelReplica:
    """One ONNX Runtime session of a verified artifact."""

    def __init__(self, directory: str, public_key: str | None, kind: str):
        from runtime.artifacts.artifact import load_artifact

        self.model = load_artifact(directory, public_key, kind=kind)

    def predict(self, rows):
        return self.model.predict(rows)

    def info(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id(), "provider": self.model.provider,
                "features": len(self.model.features)}


class Endpoint:
    """Replicas of one model; `predict` spreads calls over them round-robin."""

    def __init__(self, name: str, replicas: list, placements: list[Placement], thresholds: dict | None):
        self.name = name
        self.replicas = replicas
        self.placements = placements
        self.thresholds = thresholds
        self._next = itertools.cycle(range(len(replicas)))

    def predict(self, rows) -> np.ndarray:
        """Probabilities for `rows` (one dict, a list of dicts, or a 2-D array of raw features)."""
        return ray.get(self.replicas[next(self._next)].predict.remote(rows))

    def decide(self, rows) -> list[str]:
        """block / hold / warn / pass for each row, by the endpoint's thresholds."""
        if self.thresholds is None:
            raise ValueError("thresholds: this endpoint was deployed without decision thresholds")
        t = self.thresholds
        return ["block" if p >= t["block"] else "hold" if p >= t["hold"] else "warn" if p >= t["warn"] else "pass"
                for p in self.predict(rows)]

    def info(self) -> list[dict]:
        return ray.get([r.info.remote() for r in self.replicas])

    def shutdown(self) -> None:
        for replica in self.replicas:
            ray.kill(replica)


def deploy(artifact_dir: str | Path, name: str | None = None, replicas: int = 2, latency: str = "realtime",
           site: str | None = None, public_key: str | None = None, thresholds: dict | None = None,
           policy: str = "hetero", device: tuple[str, ...] = ("cpu", "gpu", "npu")) -> Endpoint:
    """Verify the artifact, place `replicas` replicas with the scheduler, start them, and wait
    until every one has loaded the model. SignatureError before anything starts if the artifact
    does not verify; RuntimeError naming the replica when no capacity is free for it."""
    directory = Path(artifact_dir).resolve()
    verify_directory(directory, public_key)
    if replicas < 1:
        raise ValueError(f"replicas: must be >= 1, got {replicas}")
    thresholds = check_thresholds(thresholds)
    name = name or directory.name
    state = cluster.snapshot(include_local_telemetry=False)
    requests = [JobRequest(id=f"serve-{name}-{i}", workers=1, devices_per_worker=1, allowed_kinds=tuple(device),
                           algorithm="mlp", work=1e3, latency=latency, data_site=site, preemptible=False,
                           submitted_at=float(i)) for i in range(replicas)]
    decisions = schedule(requests, state, 0.0, make_policy(policy))
    if decisions.rejected or decisions.waiting:
        why = (decisions.rejected or decisions.waiting)[0]
        raise RuntimeError(f"replica {why.job_id}: {why.reason}")
    placements = sorted(decisions.placements, key=lambda p: p.job_id)
    actors = [ModelReplica.options(**task_options(p)).remote(str(directory), public_key, p.kind) for p in placements]
    ray.get([a.info.remote() for a in actors])  # raises if a replica could not verify or load
    return Endpoint(name, actors, placements, thresholds)
