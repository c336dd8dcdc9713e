"""Free capacity indexed for fast placement.

Nodes are grouped into pools of interchangeable devices: one pool per (cluster, device kind,
model, tier, site). Each pool keeps a numpy array of its nodes' free devices, and the index keeps
each pool's total, so a job's candidate pools are found by a cached lookup and scored as vectors;
no per-job loop over nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedulers.types import ClusterState, JobRequest, Placement


@dataclass
class Pool:
    """Interchangeable devices on some nodes: where they are, and each node's free count."""

    cluster: str
    kind: str
    model: str
    tier: str
    site: str
    node_ids: list[str]
    total: np.ndarray  # per node, devices of this kind/model
    free: np.ndarray  # per node, not allocated
    with_room: list[int] | None = None  # positions of nodes with a device free, in order (None: not known now)


class CapacityIndex:
    """The free capacity of a `ClusterState`, grouped into pools and updated in place as jobs
    are placed (`take`) or their devices released (`release`)."""

    def __init__(self, state: ClusterState):
        groups: dict[tuple[str, str, str, str, str], tuple[list[str], list[float], list[float]]] = {}
        for node in state.nodes:
            if not node.healthy:
                continue
            for d in node.devices:
                count = d.count
                if not d.healthy or count <= 0:
                    continue
                key = (node.cluster, d.kind, d.model, node.tier, node.site)
                found = groups.get(key)
                if found is None:
                    found = groups[key] = ([], [], [])
                found[0].append(node.id)
                found[1].append(count)
                found[2].append(max(0.0, count - d.in_use))  # Device.free, without the property call
        ordered = sorted(groups.items())
        sizes = [len(ids) for _, (ids, _, _) in ordered]
        self.node_off = np.zeros(len(ordered) + 1, dtype=np.int64)  # pool p's nodes: node_off[p]:node_off[p + 1]
        np.cumsum(sizes, out=self.node_off[1:])
        self.node_free = np.array([f for _, (_, _, free) in ordered for f in free], dtype=float)  # every pool's, flat
        self.pools: list[Pool] = [  # each pool's `free` is a view of its slice of `node_free`
            Pool(*key, node_ids=ids, total=np.asarray(total, dtype=float),
                 free=self.node_free[self.node_off[i]:self.node_off[i + 1]])
            for i, (key, (ids, total, _)) in enumerate(ordered)
        ]
        self.state = state
        self.pool_free = np.array([p.free.sum() for p in self.pools], dtype=float)
        self.free_list = self.pool_free.tolist()  # the same, as Python floats: cheaper to read one at a time
        self.pool_total = np.array([p.total.sum() for p in self.pools], dtype=float)
        self.pool_max_node = np.array([p.total.max() for p in self.pools], dtype=float)
        self.clusters = sorted({p.cluster for p in self.pools})
        self.pool_cluster = np.array([self.clusters.index(p.cluster) for p in self.pools], dtype=int)
        self.pool_edge = np.array([p.tier == "edge" for p in self.pools], dtype=bool)
        self._position: dict[tuple[str, str, str], tuple[int, int]] | None = None  # built when first asked
        self._candidates: dict[tuple, np.ndarray] = {}
        self.version = 0  # bumped whenever free capacity changes
        self.grown = 0  # bumped whenever free capacity may grow (a release)
        self._bandwidth: dict[str | None, np.ndarray] = {}

    def locate(self, node_id: str, kind: str, model: str) -> tuple[int, int] | None:
        """(pool index, position in the pool) of a node's devices of `kind`/`model`; None when the
        node is gone or unhealthy."""
        if self._position is None:  # a round with nothing running never needs it
            self._position = {(node_id, p.kind, p.model): (pi, i)
                              for pi, p in enumerate(self.pools) for i, node_id in enumerate(p.node_ids)}
        return self._position.get((node_id, kind, model))

    def candidates(self, job: JobRequest) -> np.ndarray:
        """Indices of the pools whose devices the job may use (kind, model, cluster and site)."""
        key = (job.allowed_kinds, job.device_model, job.clusters, job.sites)
        found = self._candidates.get(key)
        if found is None:
            found = np.array(
                [
                    i for i, p in enumerate(self.pools)
                    if p.kind in job.allowed_kinds
                    and (job.device_model is None or p.model == job.device_model)
                    and (not job.clusters or p.cluster in job.clusters)
                    and (not job.sites or p.site in job.sites)
                ],
                dtype=int,
            )
            self._candidates[key] = found
        return found

    def bandwidth_to(self, data_site: str | None) -> np.ndarray:
        """Bytes/s from `data_site` to each pool's site (inf when the job has no data site)."""
        found = self._bandwidth.get(data_site)
        if found is None:
            if data_site is None:
                found = np.full(len(self.pools), np.inf)
            else:
                found = np.array([self.state.bandwidth(data_site, p.site) for p in self.pools], dtype=float)
            self._bandwidth[data_site] = found
        return found

    def select_nodes(self, pool_index: int, workers: int, per_worker: int, strategy: str, rng=None):
        """Nodes for `workers` workers of `per_worker` devices each in one pool, or None.

        `best_fit` puts the job on the single node that fits it most tightly, else on the fewest
        nodes (largest first); `random` spreads over randomly chosen nodes with room (the
        heterogeneity-agnostic baseline). Returns a list of (node position, workers there).
        """
        pool = self.pools[pool_index]
        slots = pool.free if per_worker == 1 else np.floor(pool.free / per_worker)
        if strategy == "random":
            if per_worker == 1:  # the common case: nodes with room are kept between calls
                if pool.with_room is None:
                    pool.with_room = (slots >= 1).nonzero()[0].tolist()
                room = pool.with_room
            else:
                room = (slots >= 1).nonzero()[0].tolist()
            if not room:
                return None
            if rng is None:
                order = room
            else:  # a random order; most jobs fit on its first node, so draw that one alone first
                first = int(rng.integers(len(room)))
                if slots[room[first]] >= workers:
                    return [(room[first], workers)]
                rest = np.array(room[:first] + room[first + 1:], dtype=int)
                order = [room[first]] + rest[rng.permutation(len(rest))].tolist()
            if slots[room].sum() < workers:
                return None
        else:
            whole = (slots >= workers).nonzero()[0]
            if whole.size:
                return [(int(whole[slots[whole].argmin()]), workers)]
            order = np.argsort(-slots, kind="stable").tolist()
        chosen = []
        left = workers
        for pos in order:
            take = int(min(slots[pos], left))
            if take <= 0:
                break
            chosen.append((int(pos), take))
            left -= take
            if left == 0:
                return chosen
        return None

    def taken_in_bulk(self) -> None:
        """Catch up with devices taken by writing `pool_free` and `node_free` directly (the
        compiled placement does): the per-pool totals as Python floats and the kept nodes with room."""
        self.version += 1
        self.free_list = self.pool_free.tolist()
        for pool in self.pools:
            pool.with_room = None

    def take(self, pool_index: int, chosen: list[tuple[int, int]], per_worker: int) -> None:
        """Mark the devices of `chosen` (from `select_nodes`) as allocated."""
        self.version += 1
        pool = self.pools[pool_index]
        free = pool.free
        for pos, workers in chosen:
            amount = workers * per_worker
            left = free[pos] - amount
            free[pos] = left
            self.pool_free[pool_index] -= amount
            self.free_list[pool_index] -= amount
            if left < 1:
                pool.with_room = None  # a node may have run out

    def release(self, placement: Placement) -> None:
        """Give back the devices a running job's placement holds (when it is preempted or, in a
        time-sharing round, reconsidered)."""
        self.version += 1
        self.grown += 1
        for a in placement.assignments:
            found = self.locate(a.node_id, a.kind, a.model)
            if found is None:
                continue  # the node is gone or unhealthy: nothing to give back
            pi, pos = found
            amount = a.workers * a.devices_per_worker
            pool = self.pools[pi]
            amount = min(amount, pool.total[pos] - pool.free[pos])
            pool.free[pos] += amount
            self.pool_free[pi] += amount
            self.free_list[pi] += amount
            pool.with_room = None

    def retake(self, placement: Placement) -> bool:
        """Allocate exactly a running job's current devices again; False if they are no longer free."""
        located = []
        for a in placement.assignments:
            found = self.locate(a.node_id, a.kind, a.model)
            if found is None:
                return False
            pi, pos = found
            if self.pools[pi].free[pos] < a.workers * a.devices_per_worker:
                return False
            located.append((pi, pos, a.workers * a.devices_per_worker))
        self.version += 1
        for pi, pos, amount in located:
            self.pools[pi].free[pos] -= amount
            self.pool_free[pi] -= amount
            self.free_list[pi] -= amount
            self.pools[pi].with_room = None
        return True
