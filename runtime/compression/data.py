"""The rows compression evaluates and fine-tunes on: the artifact's own split plan applied to its
training data (recorded in provenance.json), turned into features by the artifact's own
preprocessing graph. Compression runs where the SDK runs and reads the dataset whole: fine for
the credit-sized data it is meant for (training itself reads shards on the workers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from runtime.artifacts import graph
from runtime.data import read_frame
from runtime.data.preprocess import Preprocessing
from runtime.data.ray_io import split_frame
from runtime.data.splits import SplitPlan


@dataclass
class CompressionData:
    """Features (after the artifact's preprocessing) and labels per split, and the two graphs."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessing: onnx.ModelProto
    core: onnx.ModelProto
    model: str

    @property
    def positive_weight(self) -> float:
        positives = max(1.0, float(self.y_train.sum()))
        return float((len(self.y_train) - positives) / positives)


def load_compression_data(source: Path) -> CompressionData:
    """See the module docstring; ValueError naming the file when the artifact lacks what is needed."""
    provenance = json.loads((source / "provenance.json").read_text())
    described = json.loads((source / "preprocessing.json").read_text())
    data = provenance.get("training_data") or {}
    if not data.get("source") or "split_plan" not in described:
        raise ValueError(f"{source}: records no training data and split plan; compression needs them to evaluate "
                         "and fine-tune")
    plan = SplitPlan.from_json(described["split_plan"])
    parts = split_frame(read_frame(data["source"]), plan)
    pre, core = graph.split(onnx.load(str(source / "model.onnx")))
    transform = Preprocessing(pre.SerializeToString(), described["numeric"], described["categorical"],
                              described["features"])
    xy = {k: (transform.transform(v), v[plan.label].to_numpy(dtype=np.float32)) for k, v in parts.items()}
    return CompressionData(*xy["train"], *xy["val"], *xy["test"], pre, core, described.get("model", "mlp"))
