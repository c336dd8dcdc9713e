"""Running a feature job's computation: read the input, compute the sliding-window features per
key column with `kernels.features`, write Parquet. Runs in a Ray task on the node its placement
names (`run_feature_task`), on the GPU when it was placed on one that is real."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray


class FeatureInputError(ValueError):
    """An input the feature job cannot use; the message names the file or the column."""


def feature_paths(job, data_dirs: list[Path]) -> tuple[Path, Path, dict]:
    """(input, output, {"_input_root", "_output_root"}) of a FeatureJob, both inside its tenant's
    data roots `<data_dir>/<tenant>/` after resolving links, the output a file that does not exist
    yet; DataPathError naming the field and the fix otherwise (runtime.data.roots)."""
    from runtime.data.roots import feature_input, feature_output

    source, source_root = feature_input(job.input, data_dirs, job.tenant)
    output, output_root = feature_output(job.output, data_dirs, job.tenant)
    return source, output, {"_input_root": str(source_root), "_output_root": str(output_root)}


def table_rows_and_columns(path: Path) -> tuple[int, list[str]]:
    """Rows and column names of a CSV or Parquet file without loading it (Parquet: its metadata;
    CSV: its header and a count of lines)."""
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        return meta.metadata.num_rows, list(meta.schema_arrow.names)
    if path.suffix != ".csv":
        raise FeatureInputError(f"input: {path}: unknown format {path.suffix!r}; use .csv or .parquet")
    columns = list(pd.read_csv(path, nrows=0).columns)
    with path.open("rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 22), b""))
    return max(0, lines - 1), columns


def check_columns(spec: dict, columns: list[str], path: Path) -> None:
    """FeatureInputError naming the first spec column the input lacks."""
    for field, names in (("keys", spec["keys"]), ("time_column", [spec["time_column"]]),
                         ("amount_column", [spec["amount_column"]])):
        for name in names:
            if name not in columns:
                raise FeatureInputError(f"{field}: column {name!r} is not in {path.name}; columns are "
                                        f"{', '.join(columns[:20])}")


def read_input(path: Path, root: Path) -> pd.DataFrame:
    """The input file as pandas, opened once and checked to lie inside the tenant's data root."""
    from runtime.data.roots import open_input

    with open_input(path, root) as f:
        return pd.read_parquet(f) if path.suffix in (".parquet", ".pq") else pd.read_csv(f)


def compute_features(frame: pd.DataFrame, spec: dict, device: str = "cpu") -> pd.DataFrame:
    """The input's columns plus `<key>_<stat>_<w>s` for each key, window and statistic, rows in
    the input's order (events are taken in time order, ties in input order)."""
    from kernels.features import sliding_window_features

    times = frame[spec["time_column"]]
    seconds = (pd.to_datetime(times).astype("int64") / 1e9 if not pd.api.types.is_numeric_dtype(times)
               else times.astype(float)).to_numpy()
    amounts = frame[spec["amount_column"]].to_numpy(dtype=np.float64)
    order = np.argsort(seconds, kind="stable")
    out = frame.copy()
    for key in spec["keys"]:
        codes = pd.factorize(frame[key])[0].astype(np.int64)
        features = sliding_window_features(seconds[order], codes[order], amounts[order], spec["windows_s"], device)
        for name, values in features.items():
            stat = name.split("_", 1)[0]
            if stat in spec["statistics"]:
                column = np.empty_like(values)
                column[order] = values
                out[f"{key}_{name}"] = column
    return out


@ray.remote(max_retries=0)
def run_feature_task(spec: dict, run_dir: str, use_gpu: bool) -> dict:
    """Compute the job's features on this node and write its output (complete or not at all, and
    never over an existing file, inside the tenant's data root the job was admitted in); what ran
    where."""
    import torch

    from runtime.data.roots import publish_output
    from runtime.rundir import AttemptDir

    node = ray.get_runtime_context().get_node_id()
    AttemptDir.at(run_dir).write_worker_group({"placement_group": None, "workers": [{"rank": 0, "node_id": node}]})
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    frame = read_input(Path(spec["input"]), Path(spec["_input_root"]))
    result = compute_features(frame, spec, device)
    output = publish_output(spec["output"], spec["_output_root"], lambda f: result.to_parquet(f, index=False))
    return {"output": str(output), "rows": len(result), "seconds": round(time.perf_counter() - started, 3),
            "device": device + (" (placed on a GPU this machine does not have: emulated)" if use_gpu and device == "cpu"
                                else ""), "node_id": node}
