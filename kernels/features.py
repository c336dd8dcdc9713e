"""Sliding-window transaction features for payment-risk models (JR/T 0202 4.4.4.2).

For every event, over the previous events of the same key (a card, or a merchant) whose time lies
in (t - w, t] for each window w: the count, sum, mean and maximum of the amounts. One function for
every device: on the CPU, compiled O(n) sweeps (`kernels.window_sweep`); on CUDA, torch tensor
ops, as follows:

1. sort events by (key, time) with one stable sort of a composite int64 key;
2. each event's window start by `searchsorted` on that composite (times in milliseconds);
3. count and sum from a float64 prefix sum; maximum from a sparse table (range-max queries in
   O(1) after O(n log n) build).

Results come back in the input order. Tolerances against a pandas rolling group-by: counts equal,
sums and means within 1e-9 relative (float64), maxima equal.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels.device import resolve_device

DEFAULT_WINDOWS_S = (60.0, 3600.0, 86400.0)
STATS = ("count", "sum", "mean", "max")


def _as_1d(name: str, values, dtype) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.array(values))
    if tensor.ndim != 1:
        raise ValueError(f"{name}: must be one-dimensional, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name}: is empty; pass at least one event")
    return tensor.to(dtype)


def _window_max(values: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """max(values[left[i] .. right[i]]) for every i, by a sparse table."""
    n = values.numel()
    levels = [values]
    span = 1
    while span * 2 <= n:
        prev = levels[-1]
        levels.append(torch.maximum(prev[: n - 2 * span + 1], prev[span: n - span + 1]))
        span *= 2
    length = right - left + 1
    k = torch.floor(torch.log2(length.to(torch.float64))).to(torch.int64)
    out = torch.empty(n, dtype=values.dtype, device=values.device)
    for level in torch.unique(k).tolist():
        mask = k == level
        table = levels[level]
        lo = left[mask]
        hi = right[mask] - (1 << level) + 1
        out[mask] = torch.maximum(table[lo], table[hi])
    return out


def sliding_window_features(
    timestamps_s,
    keys,
    amounts,
    windows_s=DEFAULT_WINDOWS_S,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-event rolling features of `amounts` grouped by `keys` over each window in `windows_s`.

    `timestamps_s` are seconds, non-decreasing (events in arrival order); `keys` are integers
    (card or merchant ids); `amounts` numbers. Returns {"count_60s": ..., "sum_60s": ...,
    "mean_60s": ..., "max_60s": ..., ...} as NumPy arrays in the input order. On the CPU the
    compiled sweeps of `kernels.window_sweep` run on `threads` threads (default: numba's); on CUDA,
    the torch path below. Raises ValueError
    naming the argument for empty or mismatched inputs, non-positive windows, unsorted timestamps,
    or an unknown device.
    """
    dev = resolve_device(device)
    windows = [float(w) for w in (windows_s if np.ndim(windows_s) else [windows_s])]
    if not windows:
        raise ValueError("windows_s: give at least one window length in seconds")
    for w in windows:
        if not w > 0:
            raise ValueError(f"windows_s: window lengths must be > 0 seconds, got {w}")
    ts = _as_1d("timestamps_s", timestamps_s, torch.float64)
    key = _as_1d("keys", keys, torch.int64)
    amount = _as_1d("amounts", amounts, torch.float64)
    if not (ts.numel() == key.numel() == amount.numel()):
        raise ValueError(f"timestamps_s, keys, amounts: lengths differ ({ts.numel()}, {key.numel()}, {amount.numel()})")
    if bool(torch.any(ts[1:] < ts[:-1])):
        first = int(torch.nonzero(ts[1:] < ts[:-1])[0]) + 1
        raise ValueError(f"timestamps_s: must be non-decreasing (arrival order); index {first} goes back in time")
    if not bool(torch.isfinite(amount).all()):
        raise ValueError("amounts: contains NaN or infinity")
    if dev.type == "cpu":
        return _cpu_features(ts.numpy(), key.numpy(), amount.numpy(), windows, threads)
    ts, key, amount = ts.to(dev), key.to(dev), amount.to(dev)
    ms = torch.round((ts - ts[0]) * 1000).to(torch.int64)
    span = int(ms[-1]) + int(max(windows) * 1000) + 1
    _, key_rank = torch.unique(key, return_inverse=True)
    composite = key_rank * span + ms
    order = torch.sort(composite, stable=True).indices
    sorted_comp = composite[order]
    sorted_amount = amount[order]
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64, device=dev), torch.cumsum(sorted_amount, 0)])
    position = torch.arange(len(order), device=dev)
    inverse = torch.empty_like(order)
    inverse[order] = position
    out: dict[str, np.ndarray] = {}
    for w in windows:
        left = torch.searchsorted(sorted_comp, sorted_comp - int(w * 1000), right=True)
        count = (position - left + 1).to(torch.float64)
        total = prefix[position + 1] - prefix[left]
        peak = _window_max(sorted_amount, left, position)
        label = f"{w:g}s"
        for name, values in (("count", count), ("sum", total), ("mean", total / count), ("max", peak)):
            out[f"{name}_{label}"] = values[inverse].cpu().numpy()
    return out


def _cpu_features(ts: np.ndarray, key: np.ndarray, amount: np.ndarray, windows: list[float],
                  threads: int | None) -> dict[str, np.ndarray]:
    from kernels.window_sweep import window_sweep

    ms = np.round((ts - ts[0]) * 1000).astype(np.int64)
    low, high = int(key.min()), int(key.max())
    if low >= 0 and high < 4 * key.size + 1024:  # dense ids (card numbers as ranks): no sort needed
        rank, groups = key, high + 1
    else:
        uniques, rank = np.unique(key, return_inverse=True)
        groups = uniques.size
    window_ms = np.array([int(round(w * 1000)) for w in windows], dtype=np.int64)
    values = window_sweep(ms, rank.astype(np.int64, copy=False), groups, amount, window_ms, threads)
    out: dict[str, np.ndarray] = {}
    for w_index, w in enumerate(windows):
        for s_index, name in enumerate(STATS):
            out[f"{name}_{w:g}s"] = values[w_index, s_index]
    return out


def sliding_window_features_chunked(chunks, windows_s=DEFAULT_WINDOWS_S, threads: int | None = None):
    """The same features for data larger than memory: `chunks` yields (timestamps_s, keys,
    amounts) arrays in time order; for each, the features of its events are yielded, computed
    with the events of the longest window before it carried over from earlier chunks."""
    windows = [float(w) for w in (windows_s if np.ndim(windows_s) else [windows_s])]
    carry_ts = carry_key = carry_amount = None
    for ts, key, amount in chunks:
        ts, key, amount = (np.asarray(ts, dtype=np.float64), np.asarray(key, dtype=np.int64),
                           np.asarray(amount, dtype=np.float64))
        if carry_ts is not None:
            if ts.size and ts[0] < carry_ts[-1]:
                raise ValueError("chunks: timestamps must continue in time order from one chunk to the next")
            ts, key, amount = (np.concatenate([carry_ts, ts]), np.concatenate([carry_key, key]),
                               np.concatenate([carry_amount, amount]))
        skip = 0 if carry_ts is None else carry_ts.size
        features = sliding_window_features(ts, key, amount, windows, "cpu", threads)
        yield {name: values[skip:] for name, values in features.items()}
        keep = ts > ts[-1] - max(windows)
        carry_ts, carry_key, carry_amount = ts[keep], key[keep], amount[keep]
