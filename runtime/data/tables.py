"""Where a dataset is and what is in it, read through pyarrow so that every reader (the server's
checks, Ray Data on the workers, compression on a laptop) sees the same columns and types.

A dataset is a CSV or Parquet file, a directory of such files (all one format), or a URI that
pyarrow's file systems know (`file://`, `s3://`, `gs://`, `hdfs://`). Checking one streams the
label column only: memory stays flat whatever the size of the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


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
    files: list[str] = field(default_factory=list)
    positives: int = 0


def _format_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def locate(source: str | Path) -> tuple[pafs.FileSystem, list[str], str]:
    """(file system, data files, format) of a file, directory or URI. DatasetError naming the
    source when it does not exist, holds no data file, or mixes formats."""
    text = str(source)
    try:
        filesystem, root = pafs.FileSystem.from_uri(text) if "://" in text else (pafs.LocalFileSystem(), text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DatasetError(f"dataset: {text}: {exc}") from None
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DatasetError(f"dataset: {text} does not exist")
    if info.type == pafs.FileType.Directory:
        entries = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        files = sorted(e.path for e in entries if e.type == pafs.FileType.File and _format_of(e.path)
                       and not Path(e.path).name.startswith((".", "_")))
        if not files:
            raise DatasetError(f"dataset: {text} is a directory with no .csv or .parquet file in it")
    else:
        files = [root]
    formats = {_format_of(f) for f in files}
    if None in formats:
        raise DatasetError(f"dataset: {text}: unknown format; use .csv, .csv.gz or .parquet files")
    if len(formats) > 1:
        raise DatasetError(f"dataset: {text} mixes CSV and Parquet files; keep one format per dataset")
    return filesystem, files, formats.pop()


def arrow_dataset(source: str | Path) -> pads.Dataset:
    """The dataset as a pyarrow Dataset (lazy: nothing is read yet)."""
    filesystem, files, fmt = locate(source)
    try:
        return pads.dataset(files, filesystem=filesystem, format=fmt)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"dataset: {source}: cannot be read ({exc})") from None


def read_frame(source: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The whole dataset as pandas, through pyarrow (for small data: tests, compression, the
    reference models of the benchmarks). Workers never call this; they read shards."""
    return arrow_dataset(source).to_table(columns=columns).to_pandas()


def _sha256(filesystem: pafs.FileSystem, files: list[str]) -> str:
    """The file's sha256, or for several files the sha256 of their names and hashes."""
    digests = []
    for path in files:
        h = hashlib.sha256()
        with filesystem.open_input_stream(path) as stream:
            while block := stream.read(1 << 20):
                h.update(block)
        digests.append((path, h.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{Path(p).name}:{d}\n" for p, d in digests).encode()).hexdigest()


def is_numeric(arrow_type: pa.DataType) -> bool:
    """Whether a column of this type is a numeric feature (booleans and all-null columns count)."""
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type) \
        or pa.types.is_null(arrow_type) or pa.types.is_decimal(arrow_type)


def inspect_table(source: str | Path, label: str, categorical: list[str]) -> TableInfo:
    """Check the schema and measure the dataset, streaming the label column only; DatasetError
    naming the column (or file) and the fix otherwise."""
    filesystem, files, fmt = locate(source)
    dataset = arrow_dataset(source)
    schema = dataset.schema
    names = list(schema.names)
    if label not in names:
        raise DatasetError(f"label: column {label!r} is not in {source}; columns are {', '.join(names)}")
    for column in categorical:
        if column not in names:
            raise DatasetError(f"categorical: column {column!r} is not in {source}")
        if column == label:
            raise DatasetError(f"categorical: {label!r} is the label; list feature columns only")
    for column in names:
        if column != label and column not in categorical and not is_numeric(schema.field(column).type):
            raise DatasetError(f"feature: column {column!r} is not numeric ({schema.field(column).type}); list it "
                               "under categorical to one-hot encode it, or drop it")
    rows, positives, values = 0, 0, set()
    try:
        for batch in dataset.to_batches(columns=[label]):
            column = batch.column(0).drop_null().to_numpy(zero_copy_only=False)
            rows += batch.num_rows
            values.update(pd.unique(column).tolist())
            positives += int((column == 1).sum())
            if len(values) > 2:
                break
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"dataset: {source}: cannot be read ({exc})") from None
    if not values <= {0, 1} or len(values) < 2:
        raise DatasetError(f"label: column {label!r} must hold both 0 and 1, found {sorted(map(str, values))[:5]}")
    size = sum(filesystem.get_file_info(f).size or 0 for f in files)
    return TableInfo(str(source), size, rows, names, _sha256(filesystem, files), fmt, files, positives)
