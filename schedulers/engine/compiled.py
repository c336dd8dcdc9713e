"""The round's hot loop compiled: a run of jobs, in the policy's order, each given a pool and nodes.

A policy whose `choose` follows one of the rules in `schedulers.policies.base.Choice` (the
soonest completion, an edge at the data site first, the device speed nearest a target, a random
pool, the tightest pool) lets the engine decide whole runs of jobs here, in compiled code, over
flat arrays: per job, every candidate pool is checked and scored in a few nanoseconds, which is
what a Python loop (or a numpy call per job) cannot do at 100,000 decisions a second. The rules
are the very ones `choose` applies (the engine's tests compare the two job by job).

The kernel decides a job only when the answer needs nothing it does not hold; it stops at, and
returns, the first job that does (the engine's Python path then decides that one and calls the
kernel again from the next):

- a job nothing can hold now, when it could preempt (`stop_priority`), when it is the first to be
  blocked and backfill would give it a reservation (`may_reserve`), or when it is not a gang (it
  may start with fewer workers);
- a job whose chosen pool has its free devices spread too thin across nodes for a worker each.

Compiled once per machine (numba's cache, as `kernels/` are); the arrays it is given and writes
are described with `decide_run`.
"""

from __future__ import annotations

import numba
import numpy as np

# per job, the rule `choose` follows (the values of `schedulers.policies.base.Choice`)
SOONEST, EDGE_FIRST, NEAREST_SPEED, RANDOM, TIGHTEST = 1, 2, 3, 4, 5
# per job, what the kernel decided
UNDECIDED, PLACED, NO_ROOM, HELD_FOR_RESERVATION, NODE_ENTRIES_FULL = 0, 1, 2, 3, 4
BEST_FIT, RANDOM_NODES = 0, 1


@numba.njit(cache=True)
def _choose(rule: int, lo: int, hi: int, usable: np.ndarray, completion: np.ndarray, c_edge: np.ndarray,
            c_speed: np.ndarray, target: float, pool_free: np.ndarray, c_pool: np.ndarray) -> int:
    """The candidate (an index in [lo, hi)) that `rule` takes among the usable ones; -1 if none."""
    best = -1
    if rule == RANDOM:
        count = 0
        for c in range(lo, hi):
            if usable[c - lo]:
                count += 1
        if count == 0:
            return -1
        m = np.random.randint(0, count)
        for c in range(lo, hi):
            if usable[c - lo]:
                if m == 0:
                    return c
                m -= 1
        return -1
    if rule == TIGHTEST:
        for c in range(lo, hi):
            if usable[c - lo] and (best < 0 or pool_free[c_pool[c]] < pool_free[c_pool[best]]):
                best = c
        return best
    if rule == EDGE_FIRST:
        for c in range(lo, hi):
            if usable[c - lo] and c_edge[c] and (best < 0 or completion[c - lo] < completion[best - lo]):
                best = c
        if best >= 0:
            return best
    if rule == NEAREST_SPEED and not np.isnan(target):
        nearest = np.inf
        for c in range(lo, hi):
            if usable[c - lo]:
                distance = np.rint(np.abs(c_speed[c] - target) * 1e9)
                if distance < nearest:
                    nearest = distance
        for c in range(lo, hi):
            if usable[c - lo] and np.rint(np.abs(c_speed[c] - target) * 1e9) == nearest and (
                    best < 0 or completion[c - lo] < completion[best - lo]):
                best = c
        return best
    for c in range(lo, hi):  # SOONEST, and the fallbacks of EDGE_FIRST and NEAREST_SPEED
        if usable[c - lo] and (best < 0 or completion[c - lo] < completion[best - lo]):
            best = c
    return best


@numba.njit(cache=True)
def _select_nodes(node_free: np.ndarray, start: int, end: int, workers: int, per_worker: int, strategy: int,
                  out_pos: np.ndarray, out_count: np.ndarray, at: int) -> int:
    """Nodes of one pool (positions `start`..`end` in `node_free`) for `workers` workers of
    `per_worker` devices each, written to out_pos/out_count from `at`; returns how many nodes
    (0: the free devices are too thin). `CapacityIndex.select_nodes`'s rules: best fit puts the job
    on the one node that fits it most tightly (the first on ties), else on the fewest nodes,
    largest first; random takes a random node with room, whole if it can, else spreads over the
    nodes with room in a random order."""
    n = end - start
    slots = np.empty(n)
    for i in range(n):
        slots[i] = node_free[start + i] if per_worker == 1 else np.floor(node_free[start + i] / per_worker)
    if strategy == RANDOM_NODES:
        room = np.empty(n, dtype=np.int64)
        k = 0
        for i in range(n):
            if slots[i] >= 1:
                room[k] = i
                k += 1
        if k == 0:
            return 0
        first = np.random.randint(0, k)
        if slots[room[first]] >= workers:
            out_pos[at] = room[first]
            out_count[at] = workers
            return 1
        order = np.empty(k, dtype=np.int64)
        order[0] = room[first]
        rest = np.empty(k - 1, dtype=np.int64)
        j = 0
        for i in range(k):
            if i != first:
                rest[j] = room[i]
                j += 1
        order[1:] = rest[np.random.permutation(k - 1)]
        total = 0.0
        for i in range(k):
            total += slots[room[i]]
        if total < workers:
            return 0
    else:
        whole = -1
        for i in range(n):
            if slots[i] >= workers and (whole < 0 or slots[i] < slots[whole]):
                whole = i
        if whole >= 0:
            out_pos[at] = whole
            out_count[at] = workers
            return 1
        order = np.argsort(-slots, kind="mergesort")
        k = n
    left = workers
    used = 0
    for i in range(k):
        pos = order[i]
        take = int(min(slots[pos], left))
        if take <= 0:
            break
        out_pos[at + used] = pos
        out_count[at + used] = take
        used += 1
        left -= take
        if left == 0:
            return used
    return 0


@numba.njit(cache=True)
def decide_run(first: int, seed: int, now: float, strategy: int, stop_priority: float, may_reserve: bool,
               pool_free: np.ndarray, node_off: np.ndarray, node_free: np.ndarray,
               prof_off: np.ndarray, c_pool: np.ndarray, c_inv_rate: np.ndarray, c_inv_bw: np.ndarray,
               c_edge: np.ndarray, c_speed: np.ndarray, c_away: np.ndarray,
               j_prof: np.ndarray, j_workers: np.ndarray, j_per_worker: np.ndarray, j_work: np.ndarray,
               j_data: np.ndarray, j_rule: np.ndarray, j_target: np.ndarray, j_gang: np.ndarray,
               j_priority: np.ndarray, reservation: np.ndarray,
               o_status: np.ndarray, o_pick: np.ndarray, o_node_at: np.ndarray, o_nodes: np.ndarray,
               o_pos: np.ndarray, o_count: np.ndarray, cursor: np.ndarray, o_most_local: np.ndarray,
               o_at_edge: np.ndarray) -> int:
    """Decide jobs `first`, `first + 1`, ... and return the index of the first one left undecided
    (len(j_prof) when none is).

    Pools: `pool_free` (devices free per pool) and `node_free` (per node, pool p's nodes at
    node_off[p]:node_off[p + 1]) are updated as jobs are placed. Candidates of profile q are
    prof_off[q]:prof_off[q + 1] in the c_* arrays (pool, seconds per work unit and per byte, edge
    at the data site, relative speed, away from the data's edge). Jobs: their profile, workers,
    devices per worker, work (scaled to their devices), data bytes, rule, target speed (NaN:
    none), gang, priority. `reservation` is [pool (-1: none), start, extra devices, job index] and
    its extra is updated as placements pass its start.

    Written per job: o_status (PLACED, NO_ROOM, HELD_FOR_RESERVATION), o_pick (the candidate
    index), o_nodes nodes from o_node_at in o_pos/o_count, and for a job placed away from its
    data's edge, the edge's most free devices then and its soonest completion among the edge
    pools open to it (inf: none). Node entries are written from cursor[0] on, which is advanced;
    a job whose entries might not fit in what is left of o_pos stops the run with status
    NODE_ENTRIES_FULL, nothing changed for it (the caller records the run and starts again from
    it with the entries emptied), so those arrays stay the size of the cluster, not of the queue."""
    np.random.seed(seed)
    n = len(j_prof)
    res_pool = int(reservation[0])
    for j in range(first, n):
        q = j_prof[j]
        lo, hi = prof_off[q], prof_off[q + 1]
        workers, per_worker = j_workers[j], j_per_worker[j]
        need = workers * per_worker
        usable = np.zeros(hi - lo, dtype=np.bool_)
        completion = np.empty(hi - lo)
        fits = False
        for c in range(lo, hi):
            completion[c - lo] = c_inv_bw[c] * j_data[j] + c_inv_rate[c] * j_work[j]  # transfer + compute
            if pool_free[c_pool[c]] >= need:
                usable[c - lo] = True
                fits = True
        held = False
        if fits and res_pool >= 0 and int(reservation[3]) != j and need > reservation[2]:
            for c in range(lo, hi):  # (now + transfer + compute: the Python path's order of additions)
                if usable[c - lo] and c_pool[c] == res_pool and (
                        now + c_inv_bw[c] * j_data[j] + c_inv_rate[c] * j_work[j] > reservation[1]):
                    usable[c - lo] = False
                    held = True
        pick = _choose(j_rule[j], lo, hi, usable, completion, c_edge, c_speed, j_target[j], pool_free, c_pool)
        if pick < 0:
            if not j_gang[j] and not fits:
                return j  # it may start with fewer workers: the Python path sizes it
            if j_priority[j] > stop_priority or (may_reserve and res_pool < 0):
                return j  # it may preempt, or it gets the round's reservation
            o_status[j] = HELD_FOR_RESERVATION if held else NO_ROOM
            continue
        pool = c_pool[pick]
        at = cursor[0]
        if at + min(workers, node_off[pool + 1] - node_off[pool]) > len(o_pos):
            o_status[j] = NODE_ENTRIES_FULL
            return j
        used = _select_nodes(node_free, node_off[pool], node_off[pool + 1], workers, per_worker, strategy,
                             o_pos, o_count, at)
        if used == 0:
            return j  # devices spread too thin for a worker each: the Python path tries the other pools
        if c_away[pick]:
            most = -np.inf
            at_edge = np.inf
            for c in range(lo, hi):
                if c_edge[c]:
                    most = max(most, pool_free[c_pool[c]])
                    if usable[c - lo]:
                        at_edge = min(at_edge, completion[c - lo])
            o_most_local[j] = most
            o_at_edge[j] = at_edge
        start = node_off[pool]
        for i in range(at, at + used):
            node_free[start + o_pos[i]] -= o_count[i] * per_worker
        o_node_at[j] = at
        cursor[0] = at + used
        pool_free[pool] -= need
        if pool == res_pool and now + (0.0 + completion[pick - lo]) > reservation[1]:
            reservation[2] -= need
        o_status[j] = PLACED
        o_pick[j] = pick
        o_nodes[j] = used
    return n


@numba.njit(cache=True)
def admit_run(available: np.ndarray, left: float, prof_off: np.ndarray, c_pool: np.ndarray,
              j_prof: np.ndarray, j_need: np.ndarray, j_running: np.ndarray, r_off: np.ndarray, r_pool: np.ndarray,
              r_amount: np.ndarray, admitted: np.ndarray) -> int:
    """A time-sharing round's admission (`TimeSharing._admit`'s rule) over the jobs in order: a
    running job (j_running) is admitted when every pool it holds (r_pool, r_amount from r_off[j] to
    r_off[j + 1]) still has its devices available; a waiting one when its
    emptiest candidate pool (the first on ties) has room for it, which it then takes; admission
    ends once fewer than one device is `left` in all. `available` (devices free per pool) is updated;
    the indices admitted, in order, are written to `admitted`; returns how many."""
    count = 0
    for j in range(len(j_prof)):
        if left < 1:
            break
        if j_running[j]:
            fits = True
            for k in range(r_off[j], r_off[j + 1]):
                if available[r_pool[k]] < r_amount[k]:
                    fits = False
            if fits:
                for k in range(r_off[j], r_off[j + 1]):
                    available[r_pool[k]] -= r_amount[k]
                    left -= r_amount[k]
                admitted[count] = j
                count += 1
            continue
        best = -1
        for c in range(prof_off[j_prof[j]], prof_off[j_prof[j] + 1]):
            if best < 0 or available[c_pool[c]] > available[best]:
                best = c_pool[c]
        if best < 0 or available[best] < j_need[j]:
            continue
        available[best] -= j_need[j]
        left -= j_need[j]
        admitted[count] = j
        count += 1
    return count
