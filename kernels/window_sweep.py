"""The CPU path of the sliding-window features: compiled sweeps (numba), O(n) per window, every
pass parallel over the machine's cores.

1. group events by key with a parallel, stable counting sort over the keys' dense ranks (stable,
   so each group stays in time order because events arrive in time order): each thread counts
   its slice of the events into coarse buckets of ranks and scatters its slice's indices into
   them; then each bucket, on its own thread, is counting-sorted by the fine rank;
2. gather times and amounts into grouped order, and per group the running sums of the amounts'
   exact fixed-point split (as `exact_sums.split_amounts`): integers summed in int64 (exact) and
   the small remainders in float64, so a window's sum, the difference of two running sums, is
   exact to the last bit of float64 whatever the group's earlier total;
3. per window, per group: a left pointer that only moves forward gives each event's window start
   (count, and sum from the running sums), and a monotonic deque gives the running maximum; the
   twelve results of an event are written side by side in grouped order, then one parallel
   gather puts them back in the input order, column by column.

Compiled on first use (cached on disk after). The results do not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

from kernels.exact_sums import split_scale

STATS_PER_WINDOW = 4  # count, sum, mean, max
COARSE_BUCKET_BITS = 12  # about 4096 coarse buckets of ranks in the first pass of the sort


@numba.njit(parallel=True, cache=True)
def group_by_rank(rank: np.ndarray, groups: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): a stable order grouping equal ranks, and where each group starts
    (starts[groups] == n). `slices` is how many pieces the events are cut into for the threads."""
    n = rank.size
    shift = 0  # one pass when the slices' histograms are small next to the events, else two
    while ((groups - 1) >> shift) >= max(1 << COARSE_BUCKET_BITS, n // slices):
        shift += 1
    buckets = ((groups - 1) >> shift) + 1
    per_slice = (n + slices - 1) // slices
    histogram = np.zeros((slices, buckets), dtype=np.int64)
    for s in numba.prange(slices):
        for i in range(s * per_slice, min(n, (s + 1) * per_slice)):
            histogram[s, rank[i] >> shift] += 1
    bucket_start = np.empty(buckets + 1, dtype=np.int64)
    running = 0
    for b in range(buckets):  # bucket-major, slice-minor: stable across slices
        bucket_start[b] = running
        for s in range(slices):
            count = histogram[s, b]
            histogram[s, b] = running
            running += count
    bucket_start[buckets] = n
    coarse = np.empty(n, dtype=np.int64)
    for s in numba.prange(slices):
        for i in range(s * per_slice, min(n, (s + 1) * per_slice)):
            b = rank[i] >> shift
            coarse[histogram[s, b]] = i
            histogram[s, b] += 1
    if shift == 0:  # each bucket is one rank: the coarse order is the order
        return coarse, bucket_start
    order = np.empty(n, dtype=np.int64)
    starts = np.empty(groups + 1, dtype=np.int64)
    starts[groups] = n
    for b in numba.prange(buckets):
        first_rank = b << shift
        width = min(groups, first_rank + (1 << shift)) - first_rank
        counts = np.zeros(width + 1, dtype=np.int64)
        for k in range(bucket_start[b], bucket_start[b + 1]):
            counts[rank[coarse[k]] - first_rank + 1] += 1
        counts[0] = bucket_start[b]
        for r in range(width):
            counts[r + 1] += counts[r]
            starts[first_rank + r] = counts[r]
        for k in range(bucket_start[b], bucket_start[b + 1]):
            i = coarse[k]
            r = rank[i] - first_rank
            order[counts[r]] = i
            counts[r] += 1
    return order, starts


@numba.njit(parallel=True, cache=True)
def _gather(order, ms, amount, scale, starts):
    """Times and amounts in grouped order, and per group the inclusive running sums of the
    amounts' exact split at `scale` (`exact_sums`): integer parts in int64, remainders in float64."""
    n = order.size
    up, down = 2.0**scale, 2.0**-scale
    sorted_ms = np.empty(n, dtype=np.int64)
    sorted_amount = np.empty(n, dtype=np.float64)
    run_whole = np.empty(n, dtype=np.int64)
    run_remainder = np.empty(n, dtype=np.float64)
    for i in numba.prange(n):
        j = order[i]
        sorted_ms[i] = ms[j]
        sorted_amount[i] = amount[j]
        whole = np.rint(amount[j] * up)
        run_whole[i] = np.int64(whole)
        run_remainder[i] = amount[j] - whole * down
    for g in numba.prange(starts.size - 1):
        for i in range(starts[g] + 1, starts[g + 1]):
            run_whole[i] += run_whole[i - 1]
            run_remainder[i] += run_remainder[i - 1]
    return sorted_ms, sorted_amount, run_whole, run_remainder


@numba.njit(parallel=True, cache=True)
def _sweep(sorted_ms, sorted_amount, run_whole, run_remainder, unit, starts, window_ms):
    """(n, windows * 4) results in grouped order: count, sum, mean, max of each window."""
    groups = starts.size - 1
    columns = window_ms.size * STATS_PER_WINDOW
    grouped = np.empty((sorted_ms.size, columns), dtype=np.float64)
    for g in numba.prange(groups):
        lo, hi = starts[g], starts[g + 1]
        if hi == lo:
            continue
        deque = np.empty(hi - lo, dtype=np.int64)
        for w in range(window_ms.size):
            width = window_ms[w]
            left = lo
            head, tail = 0, 0
            for i in range(lo, hi):
                while sorted_ms[left] <= sorted_ms[i] - width:
                    left += 1
                while tail > head and sorted_amount[deque[tail - 1]] <= sorted_amount[i]:
                    tail -= 1
                deque[tail] = i
                tail += 1
                while deque[head] < left:
                    head += 1
                count = i - left + 1
                whole = run_whole[i] - (run_whole[left - 1] if left > lo else 0)
                part = run_remainder[i] - (run_remainder[left - 1] if left > lo else 0.0)
                total = np.float64(whole) * unit + part
                c = w * STATS_PER_WINDOW
                grouped[i, c] = count
                grouped[i, c + 1] = total
                grouped[i, c + 2] = total / count
                grouped[i, c + 3] = sorted_amount[deque[head]]
    return grouped


@numba.njit(parallel=True, cache=True)
def _to_input_order(grouped, order):
    """(columns, n): row i of `grouped` belongs to event order[i]; one parallel pass inverts the
    order, a second gathers each event's row into its columns (sequential writes)."""
    n, columns = grouped.shape
    position = np.empty(n, dtype=np.int64)
    for i in numba.prange(n):
        position[order[i]] = i
    out = np.empty((columns, n), dtype=np.float64)
    for j in numba.prange(n):
        row = position[j]
        for c in range(columns):
            out[c, j] = grouped[row, c]
    return out


def window_sweep(ms: np.ndarray, rank: np.ndarray, groups: int, amount: np.ndarray, window_ms: np.ndarray,
                 threads: int | None = None) -> np.ndarray:
    """(windows, 4, n) float64: count, sum, mean, max per window, in input order. `ms` are the
    events' times in integer milliseconds (non-decreasing), `rank` their keys' dense ranks in
    [0, groups); `threads` caps numba's threads for this call (default: all it has)."""
    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    slices = 4 * numba.get_num_threads()
    order, starts = group_by_rank(rank, groups, slices)
    magnitude = np.abs(amount)
    scale = split_scale(float(magnitude.max()), float(magnitude.sum()))
    del magnitude
    sorted_ms, sorted_amount, run_whole, run_remainder = _gather(order, ms, amount, scale, starts)
    grouped = _sweep(sorted_ms, sorted_amount, run_whole, run_remainder, 2.0**-scale, starts, window_ms)
    del sorted_ms, sorted_amount, run_whole, run_remainder
    return _to_input_order(grouped, order).reshape(window_ms.size, STATS_PER_WINDOW, ms.size)
