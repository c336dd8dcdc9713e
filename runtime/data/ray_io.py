"""Training data as Ray Datasets: read lazily in blocks, split by `SplitPlan`, transformed by the
fitted preprocessing graph, and handed to Ray Train, which gives each worker its shard
(`ray.train.get_dataset_shard`). The one full pass over the data that preparing needs (each
row's split hash and label: 9 bytes a row) and the training sample the preprocessing is fitted on
(at most `max_fit_rows` rows) run as Ray Data tasks inside the cluster, never in the server.

Ray Data's tasks ask for no CPU: a training job may hold every core of its nodes, and its input
pipeline feeds those same workers (with CPU asks, Ray Data waits forever for a free core).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from runtime.data.preprocess import Preprocessing, fit_preprocessing
from runtime.data.splits import SplitPlan, plan_from_uniforms, row_uniforms
from runtime.data.tables import arrow_dataset, is_numeric, locate

NO_CPU = {"num_cpus": 0}
MAX_FIT_ROWS = 200_000
PLAN_FILE, PREPROCESSING_FILE, COLUMNS_FILE = "split_plan.json", "preprocessing.onnx", "columns.json"


READ_BATCH_ROWS = 65_536


def _read_pieces(pieces: pd.DataFrame, filesystem, fmt: str):
    """Blocks of at most READ_BATCH_ROWS rows from each piece (a Parquet row group, or a whole
    CSV file read as a stream)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for path, row_group in zip(pieces["path"], pieces["row_group"], strict=True):
        if fmt == "parquet":
            with filesystem.open_input_file(path) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH_ROWS, row_groups=[int(row_group)]):
                    yield batch.to_pandas()
        else:
            with filesystem.open_input_stream(path, compression="detect") as f:
                reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=8 << 20))
                for batch in reader:
                    yield batch.to_pandas()


def read_dataset(source: str):
    """The dataset as a lazy Ray Dataset (CSV or Parquet files, a directory, or a URI): one piece per
    Parquet row group or CSV file, read in blocks by tasks that ask for no CPU (Ray Data's own
    readers list files in a task that needs a whole core, which a job holding every core of its
    nodes never frees)."""
    import pyarrow.parquet as pq
    import ray.data

    filesystem, files, fmt = locate(source)
    pieces = []
    for path in files:
        if fmt == "parquet":
            with filesystem.open_input_file(path) as f:
                pieces += [{"path": path, "row_group": i} for i in range(pq.ParquetFile(f).num_row_groups)]
        else:
            pieces.append({"path": path, "row_group": -1})
    return ray.data.from_items(pieces).map_batches(_read_pieces, fn_args=(filesystem, fmt), batch_size=1,
                                                   batch_format="pandas", **NO_CPU)


@dataclass
class PreparedData:
    """What every worker of a job needs to read its rows: the split plan and the preprocessing."""

    plan: SplitPlan
    preprocessing: Preprocessing

    def save(self, directory: Path) -> None:
        """Write the three files into `directory` (a checkpoint carries them)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PLAN_FILE).write_text(json.dumps(self.plan.to_json()))
        (directory / PREPROCESSING_FILE).write_bytes(self.preprocessing.onnx_bytes)
        pre = self.preprocessing
        (directory / COLUMNS_FILE).write_text(json.dumps({"numeric": pre.numeric, "categorical": pre.categorical,
                                                          "features": pre.feature_names}))

    @classmethod
    def load(cls, directory: str | Path) -> PreparedData:
        folder = Path(directory)
        columns = json.loads((folder / COLUMNS_FILE).read_text())
        plan = SplitPlan.from_json(json.loads((folder / PLAN_FILE).read_text()))
        return cls(plan, Preprocessing((folder / PREPROCESSING_FILE).read_bytes(), columns["numeric"],
                                       columns["categorical"], columns["features"]))

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        return all((Path(directory) / name).exists() for name in (PLAN_FILE, PREPROCESSING_FILE, COLUMNS_FILE))


def feature_columns(schema, label: str, categorical: list[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns of a pyarrow schema, in its column order."""
    numeric = [n for n in schema.names if n != label and n not in categorical and is_numeric(schema.field(n).type)]
    return numeric, [n for n in schema.names if n in categorical]


def prepare(source: str, label: str, categorical: list[str], validation_fraction: float, test_fraction: float,
            seed: int, max_fit_rows: int = MAX_FIT_ROWS) -> PreparedData:
    """One streaming pass for the split plan, then the preprocessing fitted on (a hash sample of at
    most `max_fit_rows` of) the training rows only."""
    schema = arrow_dataset(source).schema
    numeric, cats = feature_columns(schema, label, categorical)
    columns = [c for c in schema.names if c != label]
    dataset = read_dataset(source)

    def hashes(batch: pd.DataFrame) -> dict:
        batch = batch[batch[label].notna()]
        return {"u": row_uniforms(batch, columns, seed), "y": batch[label].astype(np.int8).to_numpy()}

    uniforms, labels = [], []
    for part in dataset.map_batches(hashes, batch_format="pandas", **NO_CPU).iter_batches(batch_format="numpy",
                                                                                         batch_size=None):
        uniforms.append(part["u"])
        labels.append(part["y"])
    plan = plan_from_uniforms(label, columns, seed, validation_fraction, test_fraction, np.concatenate(uniforms),
                              np.concatenate(labels))
    rate = plan.sample_rate(max_fit_rows)

    def training_sample(batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch[batch[label].notna()]
        return batch[(plan.assign(batch) == "train") & plan.sampled(batch, rate)]

    sample = dataset.map_batches(training_sample, batch_format="pandas", **NO_CPU).to_pandas()
    onnx_bytes, names = fit_preprocessing(sample, numeric, cats)
    return PreparedData(plan, Preprocessing(onnx_bytes, numeric, cats, names))


def features_and_labels(batch: pd.DataFrame, prepared: PreparedData, split: str) -> dict:
    """{"x": (rows, features) float32, "y": (rows,) float32} for the batch's rows in `split`."""
    label = prepared.plan.label
    batch = batch[batch[label].notna()]
    mine = batch[prepared.plan.assign(batch) == split]
    return {"x": prepared.preprocessing.transform(mine), "y": mine[label].to_numpy(dtype=np.float32)}


def split_dataset(source: str, prepared: PreparedData, split: str):
    """The rows of one split as a lazy Ray Dataset of features and labels."""
    return read_dataset(source).map_batches(features_and_labels, fn_args=(prepared, split), batch_format="pandas",
                                            **NO_CPU)


def prepare_frame(frame: pd.DataFrame, label: str, categorical: list[str], validation_fraction: float = 0.2,
                  test_fraction: float = 0.2, seed: int = 0) -> tuple[PreparedData, dict[str, pd.DataFrame]]:
    """`prepare` for data held in memory (tests, benchmarks, reference models): the plan, the
    preprocessing fitted on all training rows, and the rows per split."""
    from runtime.data.splits import plan_for_frame

    plan = plan_for_frame(frame, label, seed, validation_fraction, test_fraction)
    parts = split_frame(frame, plan)
    numeric = [c for c in frame.columns if c != label and c not in categorical]
    onnx_bytes, names = fit_preprocessing(parts["train"], numeric, list(categorical))
    return PreparedData(plan, Preprocessing(onnx_bytes, numeric, list(categorical), names)), parts


def split_frame(frame: pd.DataFrame, plan: SplitPlan) -> dict[str, pd.DataFrame]:
    """An in-memory frame's rows per split (for small data: compression, tests, reference models)."""
    frame = frame[frame[plan.label].notna()]
    assigned = plan.assign(frame)
    return {split: frame[assigned == split] for split in ("train", "val", "test")}
