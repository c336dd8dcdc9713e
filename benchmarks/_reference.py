"""Straightforward references the kernels are measured and checked against."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pandas_sliding_window(ts, keys, amounts, window_s: float) -> pd.DataFrame:
    """count/sum/mean/max of `amounts` per key over (t - window, t], by pandas' rolling group-by,
    put back in input order (pandas returns rows key by key, each key's rows in input order)."""
    df = pd.DataFrame({"ts": pd.to_datetime(ts, unit="s"), "key": keys, "amount": amounts})
    rolled = df.groupby("key").rolling(f"{window_s:g}s", on="ts")["amount"].agg(["count", "sum", "mean", "max"])
    order = np.lexsort((np.arange(len(keys)), keys))
    out = pd.DataFrame(index=range(len(keys)), columns=rolled.columns, dtype=float)
    out.iloc[order] = rolled.to_numpy()
    return out
