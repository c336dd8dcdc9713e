"""The rows a model is asked to score, checked before ONNX Runtime sees them: the accepted forms
(a DataFrame, a dict, a list of dicts, a 2-D array in the model's input order), the fields each
row must have, numbers that fit float32, categories as text. A row that cannot be scored is an
`InputError` naming the row and the field."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputError(ValueError):
    """Rows a model cannot score; the message names the row and the field."""


def _number(value, where: str) -> float:
    """A numeric field as to_frame + raw_inputs read it: None, NaN and text that is no number are
    errors or missing exactly as there (booleans are 0/1)."""
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {value!r} is not a number") from None
    if abs(number) > FLOAT32_MAX:  # the model reads float32: larger is infinite there
        raise InputError(f"{where}: {value!r} is not finite" if math.isinf(number)
                         else f"{where}: {value!r} is beyond float32's range")
    return number


def _check_fields(i: int, row: dict, columns: list[str]) -> None:
    """InputError naming row `i`'s missing or unknown fields, if any."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise InputError(f"rows[{i}]: missing field(s) {', '.join(missing[:5])}")
    extra = sorted(set(row) - set(columns))
    if extra:
        raise InputError(f"rows[{i}]: unknown field(s) {', '.join(extra[:5])}; the model takes "
                         f"{', '.join(columns[:8])}{' ...' if len(columns) > 8 else ''}")


def to_frame(rows, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Raw rows as a DataFrame of the model's columns, checked: a DataFrame, a dict (one row), a
    list of dicts, or a 2-D array / list of lists in the model's input order (numbers only). A
    missing or unknown column, a non-numeric number or an infinite value is an InputError naming
    the row and the field; a missing number (None, NaN) is imputed with the training median, a
    missing category ("" or None) counts as unseen."""
    columns = numeric + categorical
    if isinstance(rows, pd.DataFrame):
        frame = rows
    elif isinstance(rows, dict):
        frame = pd.DataFrame([rows])
    elif isinstance(rows, list | tuple) and rows and all(isinstance(r, dict) for r in rows):
        for i, row in enumerate(rows):
            _check_fields(i, row, columns)
        frame = pd.DataFrame(list(rows))
    else:
        if categorical:
            raise InputError(f"rows: this model has categorical inputs ({', '.join(categorical[:3])}); send rows as "
                             "dicts or a DataFrame keyed by column name")
        try:
            matrix = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"rows: must be numbers ({exc})") from None
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2 or matrix.shape[1] != len(numeric):
            raise InputError(f"rows: expected shape (n, {len(numeric)}), got {matrix.shape}")
        frame = pd.DataFrame(matrix, columns=numeric)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"rows: missing field(s) {', '.join(missing[:5])}")
    extra = [c for c in frame.columns if c not in columns]
    if extra:
        raise InputError(f"rows: unknown field(s) {', '.join(map(str, extra[:5]))}")
    for column in numeric:
        for i, value in enumerate(frame[column]):
            if not isinstance(value, bool):
                _number(value, f"rows[{i}].{column}")
    return frame[columns]


def _category(value) -> str:
    """A categorical field as text, as `category_text` writes it (3 and 3.0 are "3"; missing is "")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def input_feeds(rows, numeric: list[str], categorical: list[str]) -> dict[str, np.ndarray]:
    """The ONNX feeds for raw rows in any form `to_frame` accepts, with its checks and its errors.
    Rows given as dicts (what arrives over HTTP) are read straight into arrays, without a
    DataFrame (40 us instead of 3 ms for a 30-field row); other forms go through `to_frame`."""
    from runtime.data.preprocess import raw_inputs

    one = isinstance(rows, dict)
    if not (one or (isinstance(rows, list | tuple) and rows and all(isinstance(r, dict) for r in rows))):
        return raw_inputs(to_frame(rows, numeric, categorical), numeric, categorical)
    rows = [rows] if one else rows
    columns = numeric + categorical
    known = set(columns)
    for i, row in enumerate(rows):
        if len(row) != len(columns) or not known.issuperset(row):
            _check_fields(i, row, columns)
    feeds = {c: np.array([[_number(row[c], f"rows[{i}].{c}")] for i, row in enumerate(rows)], dtype=np.float32)
             for c in numeric}
    for c in categorical:
        feeds[c] = np.array([[_category(row[c])] for row in rows], dtype=object)
    return feeds
