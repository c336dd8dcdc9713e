"""Reproducible, exactly stratified train / validation / test splits that any reader of any block
of the data computes alike, without a global row index.

Each row gets a number in [0, 1) from a seeded hash of its values (numbers as float64, everything
else as text), so the same row lands in the same split on every worker, whatever the block
layout, and duplicated rows never straddle train and test. Per class, cut points are chosen from
the hashes of that class's rows so that exactly round(n_class * fraction) rows go to test and to
validation: the split is stratified to the row, like scikit-learn's `train_test_split(stratify=)`,
but a worker needs only six numbers to place any row it reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
_SAMPLE_KEY_OFFSET = 7919  # a second, independent hash (for sampling inside a split)


def row_hash_key(seed: int) -> str:
    """pandas' hash key (16 characters) for a seed."""
    return f"{seed % 10**16:016d}"


def row_uniforms(frame: pd.DataFrame, columns: list[str], seed: int) -> np.ndarray:
    """A number in [0, 1) per row, from a hash of its `columns` values and `seed`."""
    canonical = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            canonical[column] = values.astype("float64")
        else:
            canonical[column] = values.astype("object").where(values.notna(), "").astype(str)
    hashed = pd.util.hash_pandas_object(canonical, index=False, hash_key=row_hash_key(seed)).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class SplitPlan:
    """Cut points per class: a row of class c whose uniform u is < test_cut[c] is a test row,
    < val_cut[c] a validation row, else a training row. `counts` are the rows per split and class."""

    label: str
    columns: list[str]  # the columns hashed: every column of the dataset but the label, in order
    seed: int
    validation_fraction: float
    test_fraction: float
    test_cut: dict[str, float]
    val_cut: dict[str, float]
    counts: dict[str, dict[str, int]]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SplitPlan:
        return cls(**data)

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """The split of each row ("train", "val", "test"; "" for a row without a label)."""
        u = row_uniforms(frame, self.columns, self.seed)
        y = frame[self.label]
        out = np.full(len(frame), "", dtype=object)
        for cls in ("0", "1"):
            mine = (y == int(cls)).to_numpy()
            out[mine & (u < self.test_cut[cls])] = "test"
            out[mine & (u >= self.test_cut[cls]) & (u < self.val_cut[cls])] = "val"
            out[mine & (u >= self.val_cut[cls])] = "train"
        return out

    def sample_rate(self, max_rows: int) -> float:
        """The share of training rows to sample to get about `max_rows` of them."""
        train = sum(self.counts["train"].values())
        return 1.0 if train <= max_rows else max_rows / train

    def sampled(self, frame: pd.DataFrame, rate: float) -> np.ndarray:
        """Rows chosen by a second hash with probability `rate` (independent of the split)."""
        return row_uniforms(frame, self.columns, self.seed + _SAMPLE_KEY_OFFSET) < rate


def plan_from_uniforms(label: str, columns: list[str], seed: int, validation_fraction: float,
                       test_fraction: float, uniforms: np.ndarray, labels: np.ndarray) -> SplitPlan:
    """The cut points that put exactly round(n_c * fraction) rows of each class c in test and in
    validation (ties between identical rows stay together). ValueError when a class is missing."""
    test_cut, val_cut, counts = {}, {}, {s: {} for s in SPLITS}
    for cls in (0, 1):
        u = np.sort(uniforms[labels == cls])
        if len(u) == 0:
            raise ValueError(f"label: no row of class {cls}; a binary label needs both 0 and 1")
        n_test = int(round(len(u) * test_fraction))
        n_val = int(round(len(u) * validation_fraction))
        bounds = np.append(u, 1.0)
        test_cut[str(cls)] = float(bounds[n_test])
        val_cut[str(cls)] = float(bounds[n_test + n_val])
        counts["test"][str(cls)] = int((u < test_cut[str(cls)]).sum())
        counts["val"][str(cls)] = int(((u >= test_cut[str(cls)]) & (u < val_cut[str(cls)])).sum())
        counts["train"][str(cls)] = len(u) - counts["test"][str(cls)] - counts["val"][str(cls)]
    return SplitPlan(label, list(columns), seed, validation_fraction, test_fraction, test_cut, val_cut, counts)


def plan_for_frame(frame: pd.DataFrame, label: str, seed: int, validation_fraction: float,
                   test_fraction: float) -> SplitPlan:
    """The plan for data held in memory (tests, the benchmarks' reference models)."""
    frame = frame[frame[label].notna()]
    columns = [c for c in frame.columns if c != label]
    return plan_from_uniforms(label, columns, seed, validation_fraction, test_fraction,
                              row_uniforms(frame, columns, seed), frame[label].astype(int).to_numpy())
