"""Which jobs can never run on a cluster, however long they wait (rejected with the reason)."""

from __future__ import annotations

from schedulers.capacity_index import CapacityIndex
from schedulers.reasons import describe_demand
from schedulers.types import ClusterState, JobRequest, Rejection


def can_ever_fit(job: JobRequest, index: CapacityIndex) -> str | None:
    """None if the job fits the cluster's total capacity when empty; else why it never will."""
    cand = index.candidates(job)
    demand = describe_demand(job)
    if cand.size == 0:
        return f"rejected: no {demand} exists in any cluster"
    per_node_ok = cand[index.pool_max_node[cand] >= job.devices_per_worker]
    if per_node_ok.size == 0:
        return (f"rejected: each worker needs {job.devices_per_worker} {demand} on one node; the largest node "
                f"has {index.pool_max_node[cand].max():g}")
    need = job.devices_needed if job.gang else job.devices_per_worker
    largest = index.pool_total[per_node_ok].max()
    if largest < need:
        return f"rejected: needs {need} {demand} in one pool (cluster, model, site); the largest has {largest:g}"
    return None


def check_submission(job: JobRequest, state: ClusterState) -> Rejection | None:
    """Reject at submission a job that can never fit `state`'s total capacity (with the reason)."""
    reason = can_ever_fit(job, CapacityIndex(state))
    return Rejection(job.id, reason) if reason else None
