"""Loading tabular training data with schema checks, and splitting it reproducibly.

CSV and Parquet. Checks at submission, before any worker starts: the file exists, the label
column exists and is binary, every feature is numeric or listed as categorical (then one-hot
encoded). Standardisation uses training-split statistics only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message names the file or the column."""


@dataclass(frozen=True)
class TableInfo:
    """What was measured about a dataset at submission (for placement and traceability)."""

    path: str
    bytes: int
    rows: int
    columns: list[str]
    sha256: str
    format: str


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame (CSV or Parquet by extension)."""
    file = Path(path)
    if not file.exists():
        raise DatasetError(f"dataset: {file} does not exist")
    if file.suffix in (".parquet", ".pq"):
        return pd.read_parquet(file)
    if file.suffix in (".csv", ".txt", ".gz"):
        return pd.read_csv(file)
    raise DatasetError(f"dataset: {file}: unknown format {file.suffix!r}; use .csv or .parquet")


def inspect_table(path: str | Path, label: str, categorical: list[str]) -> TableInfo:
    """Check the schema and measure the file; DatasetError naming the column otherwise."""
    file = Path(path)
    frame = read_table(file)
    if label not in frame.columns:
        raise DatasetError(f"label: column {label!r} is not in {file.name}; columns are {', '.join(map(str, frame.columns))}")
    values = set(pd.unique(frame[label].dropna()))
    if not values <= {0, 1} or len(values) < 2:
        raise DatasetError(f"label: column {label!r} must hold both 0 and 1, found {sorted(map(str, values))[:5]}")
    for column in categorical:
        if column not in frame.columns:
            raise DatasetError(f"categorical: column {column!r} is not in {file.name}")
    for column in frame.columns:
        if column == label or column in categorical:
            continue
        if not pd.api.types.is_numeric_dtype(frame[column]):
            example = frame[column].dropna().iloc[0] if frame[column].notna().any() else None
            raise DatasetError(f"feature: column {column!r} is not numeric (e.g. {example!r}); list it under "
                               "categorical to one-hot encode it, or drop it")
    return TableInfo(str(file.resolve()), file.stat().st_size, len(frame), list(map(str, frame.columns)),
                     file_sha256(file), "parquet" if file.suffix in (".parquet", ".pq") else "csv")


@dataclass
class Splits:
    """Standardised float32 feature matrices and 0/1 labels for train, validation and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray

    @property
    def positive_weight(self) -> float:
        """negatives / positives in the training split (class weight for the positive class)."""
        positives = max(1.0, float(self.y_train.sum()))
        return float((len(self.y_train) - positives) / positives)


def prepare_splits(path: str | Path, label: str, categorical: list[str], validation_fraction: float,
                   test_fraction: float, seed: int) -> Splits:
    """Stratified train/validation/test split (fixed `seed`), one-hot encoding, standardisation."""
    frame = read_table(path).dropna(subset=[label])
    y = frame[label].astype(int).to_numpy()
    features = pd.get_dummies(frame.drop(columns=[label]), columns=categorical, dtype=float)
    features = features.fillna(features.median(numeric_only=True))
    x = features.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(y == cls))
        n_test = int(round(len(index) * test_fraction))
        n_val = int(round(len(index) * validation_fraction))
        parts["test"].append(index[:n_test])
        parts["val"].append(index[n_test:n_test + n_val])
        parts["train"].append(index[n_test + n_val:])
    chosen = {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}
    mean = x[chosen["train"]].mean(axis=0)
    scale = x[chosen["train"]].std(axis=0)
    scale[scale == 0] = 1.0

    def standard(index):
        return ((x[index] - mean) / scale).astype(np.float32), y[index].astype(np.float32)

    x_train, y_train = standard(chosen["train"])
    x_val, y_val = standard(chosen["val"])
    x_test, y_test = standard(chosen["test"])
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, list(map(str, features.columns)), mean, scale)
