"""Preprocessing that travels with the model: a scikit-learn `ColumnTransformer` (median
imputation and standard scaling for numbers; one-hot encoding for categorical columns, with
categories never seen in training ignored) fitted on training rows only, then converted to ONNX
with skl2onnx. Workers transform their batches by running that ONNX graph in ONNX Runtime, and the
artifact prepends the same graph to the model: training and serving compute identical features
(tree split points sit exactly on training values, so "nearly identical" would flip splits).

Raw inputs are one ONNX input per column, (rows, 1): float32 for numeric columns, strings for
categorical ones. A missing categorical value is the empty string; a missing number is NaN and
imputed with the training median.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

OUTPUT = "features"
ONNX_OPSETS = {"": 15, "ai.onnx.ml": 3}  # what skl2onnx, onnxmltools and torch.onnx all produce here


def category_text(values: pd.Series) -> np.ndarray:
    """Categorical values as text, the same for training and serving: integral numbers without a
    decimal point (3 and 3.0 are "3"), missing values as ""."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64").to_numpy()
        return np.array(["" if np.isnan(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                         for v in numbers], dtype=object)
    return values.astype("object").where(values.notna(), "").astype(str).to_numpy(dtype=object)


def raw_inputs(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, np.ndarray]:
    """The ONNX feeds for raw rows: one (rows, 1) array per column (numbers given as text or
    booleans are converted; what is not a number becomes NaN, i.e. missing)."""
    feeds = {}
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        feeds[column] = values.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
    for column in categorical:
        feeds[column] = category_text(frame[column]).reshape(-1, 1)
    return feeds


def fit_preprocessing(sample: pd.DataFrame, numeric: list[str], categorical: list[str]) -> tuple[bytes, list[str]]:
    """Fit on training rows, convert to ONNX: (model bytes, names of the output features)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                       ("scale", StandardScaler())]), numeric))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    transformer = ColumnTransformer(parts)
    frame = pd.DataFrame({c: v.ravel() for c, v in raw_inputs(sample, numeric, categorical).items()})
    transformer.fit(frame)
    names = [n.split("__", 1)[1] for n in transformer.get_feature_names_out()]
    types = [(c, FloatTensorType([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in categorical]
    graph = convert_sklearn(transformer, initial_types=types, final_types=[(OUTPUT, FloatTensorType([None, len(names)]))],
                            target_opset=ONNX_OPSETS)
    graph.graph.name = "suanli-preprocessing"
    return graph.SerializeToString(), names


@dataclass
class Preprocessing:
    """The fitted preprocessing graph, run by ONNX Runtime."""

    onnx_bytes: bytes
    numeric: list[str]
    categorical: list[str]
    feature_names: list[str]

    def __post_init__(self) -> None:
        from runtime.artifacts.load import ort_session

        self._session = ort_session(self.onnx_bytes, "cpu", threads=1)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, features) float32: what the model sees for these raw rows."""
        if len(frame) == 0:
            return np.zeros((0, len(self.feature_names)), dtype=np.float32)
        return self._session.run([OUTPUT], raw_inputs(frame, self.numeric, self.categorical))[0]

    def __getstate__(self) -> dict:  # the session is rebuilt where it is unpickled (in a Ray worker)
        return {k: v for k, v in self.__dict__.items() if k != "_session"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()
