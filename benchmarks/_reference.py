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


def polars_sliding_window(ts, keys, amounts, windows_s) -> dict:
    """The same features with Polars, as a data engineer would write them: `rolling_*_by` over the
    time column, per key (`over`), which keeps the input order."""
    import polars as pl

    frame = pl.DataFrame({"t": pl.Series(np.asarray(ts) * 1e6).cast(pl.Datetime("us")), "key": keys,
                          "amount": amounts, "one": np.ones(len(keys))})
    columns = []
    for w in windows_s:
        size = f"{int(w * 1000)}ms"
        columns += [pl.col("one").rolling_sum_by("t", size).over("key").alias(f"count_{w:g}s"),
                    pl.col("amount").rolling_sum_by("t", size).over("key").alias(f"sum_{w:g}s"),
                    pl.col("amount").rolling_mean_by("t", size).over("key").alias(f"mean_{w:g}s"),
                    pl.col("amount").rolling_max_by("t", size).over("key").alias(f"max_{w:g}s")]
    out = frame.select(columns)
    return {name: out[name].to_numpy() for name in out.columns}


def duckdb_sliding_window(ts, keys, amounts, windows_s, threads: int | None = None) -> dict:
    """The same features with DuckDB window functions over RANGE frames, in input order."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    frame = pd.DataFrame({"i": np.arange(len(keys)), "t": np.asarray(ts, dtype=float), "key": keys,
                          "amount": amounts})
    con.register("events", frame)
    selects = []
    for w in windows_s:
        frame_sql = (f"OVER (PARTITION BY key ORDER BY t RANGE BETWEEN {w - 1e-9} PRECEDING AND CURRENT ROW)")
        selects += [f"count(*) {frame_sql} AS \"count_{w:g}s\"", f"sum(amount) {frame_sql} AS \"sum_{w:g}s\"",
                    f"avg(amount) {frame_sql} AS \"mean_{w:g}s\"", f"max(amount) {frame_sql} AS \"max_{w:g}s\""]
    out = con.execute(f"SELECT {', '.join(selects)} FROM events ORDER BY i").df()
    return {name: out[name].to_numpy(dtype=float) for name in out.columns}
