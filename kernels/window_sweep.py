"""The CPU path of the sliding-window features: compiled sweeps (numba), O(n) per window.

1. group events by key with a counting sort (stable, so each group stays in time order because
   events arrive in time order) over the keys' dense ranks;
2. one pass for running sums of the amounts, restarted at each group (a window's sum is the
   difference of two of its own group's running sums);
3. per window, per group: a left pointer that only moves forward gives each event's window start
   (count, and sum from the prefix sums), and a monotonic deque gives the running maximum; groups
   are independent, so they are shared among threads (`numba.prange`).

Results are scattered back to the input order. Compiled on first use (cached on disk after).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _counting_sort(rank: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): a stable order grouping equal ranks, and where each group starts."""
    counts = np.zeros(groups + 1, dtype=np.int64)
    for r in rank:
        counts[r + 1] += 1
    for g in range(groups):
        counts[g + 1] += counts[g]
    starts = counts.copy()
    order = np.empty(rank.size, dtype=np.int64)
    for i in range(rank.size):
        r = rank[i]
        order[counts[r]] = i
        counts[r] += 1
    return order, starts


@numba.njit(cache=True)
def _gather(order: np.ndarray, ms: np.ndarray, amount: np.ndarray, starts: np.ndarray):
    """Times, amounts and inclusive per-group running sums, in grouped order."""
    n = order.size
    sorted_ms = np.empty(n, dtype=np.int64)
    sorted_amount = np.empty(n, dtype=np.float64)
    running_sum = np.empty(n, dtype=np.float64)
    for i in range(n):
        sorted_ms[i] = ms[order[i]]
        sorted_amount[i] = amount[order[i]]
    for g in range(starts.size - 1):
        running = 0.0
        for i in range(starts[g], starts[g + 1]):
            running += sorted_amount[i]
            running_sum[i] = running
    return sorted_ms, sorted_amount, running_sum


@numba.njit(parallel=True, cache=True)
def _sweep(sorted_ms, sorted_amount, running_sum, starts, order, window_ms, out):
    """out[w, s, order[i]] for stat s in (count, sum, mean, max) of window w."""
    groups = starts.size - 1
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
                total = running_sum[i] - (running_sum[left - 1] if left > lo else 0.0)
                j = order[i]
                out[w, 0, j] = count
                out[w, 1, j] = total
                out[w, 2, j] = total / count
                out[w, 3, j] = sorted_amount[deque[head]]


def window_sweep(ms: np.ndarray, rank: np.ndarray, groups: int, amount: np.ndarray, window_ms: np.ndarray,
                 threads: int | None = None) -> np.ndarray:
    """(windows, 4, n) float64: count, sum, mean, max per window, in input order. `ms` are the
    events' times in integer milliseconds (non-decreasing), `rank` their keys' dense ranks in
    [0, groups)."""
    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    order, starts = _counting_sort(rank, groups)
    sorted_ms, sorted_amount, running_sum = _gather(order, ms, amount, starts)
    out = np.empty((window_ms.size, 4, ms.size), dtype=np.float64)
    _sweep(sorted_ms, sorted_amount, running_sum, starts, order, window_ms, out)
    return out
