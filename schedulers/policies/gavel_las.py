"""`gavel-las`: Gavel's heterogeneity-aware least attained service (Narayanan et al., OSDI '20).

Each round, max-min fairness over effective throughput, solved as a linear program with SciPy's
HiGHS: the allocation X[j, m] is the fraction of time job j should spend on device model m,

    maximise   t + eps * sum_j e_j(X)       (eps small: the min first, then total throughput)
    subject to e_j(X) = sum_m X[j, m] * rate[j, m] / equal_share_rate[j] >= t   for every job j
               sum_m X[j, m] <= 1                                          for every job j
               sum_j devices[j] * X[j, m] <= free[m]                       for every model m
               0 <= X <= 1

where `equal_share_rate[j]` is the job's rate under an equal share of every model (its rates
weighted by the cluster's mix of models), so jobs of different speeds are compared on what they
would get in a fair, heterogeneity-agnostic cluster. Gavel's round-based mechanism then runs the
jobs furthest behind their allocation: jobs are admitted in order of allocated share over
received share (received = attained service over devices x time in the system; jobs never run
come first), and each takes the device model its allocation favours most, jobs allocated to
fewer models choosing first.

Simplifications against Gavel's own code, stated: no space sharing (one job per device), no
water-filling beyond the small `eps` term, and received service is the job's attained service
normalised to its fastest device (what the engine knows), not per model.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, hstack, vstack

from schedulers.policies.base import Policy, PoolOptions, RoundContext, effective_priority

EPS = 1e-3


def max_min_allocation(rates: np.ndarray, devices: np.ndarray, free: np.ndarray) -> np.ndarray:
    """X (jobs x models) maximising the least normalised effective throughput (ties broken by the
    total), for `rates` (jobs x models, work/s of each job on each model; 0 where it cannot run),
    `devices` per job and `free` devices per model. Raises RuntimeError if HiGHS fails."""
    n, k = rates.shape
    if n == 0 or k == 0:
        return np.zeros((n, k))
    mix = free / free.sum() if free.sum() > 0 else np.full(k, 1.0 / k)
    equal = rates @ mix
    norm = np.divide(rates, equal[:, None], out=np.zeros_like(rates), where=equal[:, None] > 0)
    nv = n * k  # variables: X row-major, then t
    rows = np.repeat(np.arange(n), k)
    cols = np.arange(nv)
    # t - sum_m norm[j, m] X[j, m] <= 0
    fair = hstack([coo_matrix((-norm.ravel(), (rows, cols)), shape=(n, nv)), coo_matrix(np.ones((n, 1)))])
    # sum_m X[j, m] <= 1
    share = hstack([coo_matrix((np.ones(nv), (rows, cols)), shape=(n, nv)), coo_matrix((n, 1))])
    # sum_j devices[j] X[j, m] <= free[m]
    model_rows = np.tile(np.arange(k), n)
    capacity = hstack([coo_matrix((np.repeat(devices, k).astype(float), (model_rows, cols)), shape=(k, nv)),
                       coo_matrix((k, 1))])
    a_ub = vstack([fair, share, capacity]).tocsr()
    b_ub = np.concatenate([np.zeros(n), np.ones(n), free])
    c = np.concatenate([-EPS * norm.ravel(), [-1.0]])
    bounds = np.column_stack([np.zeros(nv + 1), np.concatenate([(rates.ravel() > 0).astype(float), [np.inf]])])
    result = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"gavel-las: the allocation LP failed ({result.message})")
    return result.x[:nv].reshape(n, k)


class GavelLasPolicy(Policy):
    name = "gavel-las"
    time_shares = True

    def __init__(self):
        self._allocation: dict[str, dict[str, float]] = {}

    def order(self, jobs, ctx: RoundContext):
        free = ctx.free_by_model()
        models = sorted(m for m, f in free.items() if f > 0)
        per_job = [ctx.model_rates(j) for j in jobs]
        rates = np.array([[r.get(m, 0.0) for m in models] for r in per_job], dtype=float).reshape(len(jobs), len(models))
        devices = np.array([j.devices_needed for j in jobs], dtype=float)
        x = max_min_allocation(rates, devices, np.array([free[m] for m in models], dtype=float))
        best = rates.max(axis=1, initial=0.0)
        effective = np.divide((x * rates).sum(axis=1), best, out=np.zeros(len(jobs)), where=best > 0)
        self._allocation = {j.id: dict(zip(models, row.tolist(), strict=True)) for j, row in zip(jobs, x, strict=True)}

        def key(i: int):
            job = jobs[i]
            in_system = max(ctx.now - job.submitted_at, 1e-9)
            received = job.attained_service_s / (job.devices_needed * in_system)
            behind = effective[i] / received if received > 0 else np.inf
            return (-effective_priority(job, ctx), -behind, -effective[i], job.submitted_at, job.id)

        return [jobs[i] for i in sorted(range(len(jobs)), key=key)]

    def assignment_order(self, jobs, ctx: RoundContext):
        """Jobs allocated to fewer models pick first (a job that can use only the V100 before one
        that can use any), then those with the larger share on one model."""
        def key(job):
            share = self._allocation.get(job.id, {})
            return (sum(1 for v in share.values() if v > 1e-9), -max(share.values(), default=0.0))

        return sorted(jobs, key=key)

    def choose(self, job, options: PoolOptions) -> int:
        share = self._allocation.get(job.id, {})
        wanted = np.array([share.get(m, 0.0) for m in options.models])
        best = np.flatnonzero(wanted >= wanted.max() - 1e-9)
        return int(best[np.argmin(options.completion_s[best])])
