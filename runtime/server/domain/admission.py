"""Admission: what a submitted job must pass before it is stored (its paths inside the server's
data directories, its dataset's schema, its clusters known) and whether it can ever fit."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.data import DatasetError, inspect_table
from runtime.server.domain.errors import Forbidden, Invalid, for_status
from runtime.specs import FeatureJob, TrainingJob
from schedulers.engine import check_submission
from schedulers.types import JobRequest

if TYPE_CHECKING:
    from runtime.server.service import Server

MAX_TABLES_MEASURED = 256


def resolve_dataset(path: str, allowed: list[Path], field: str = "dataset", output: bool = False) -> Path | str:
    """An absolute path the server may read (a file, or for `dataset` a directory of files) or,
    with `output`, write: inside one of `allowed` (when any are set). A URI other than file://
    (s3://, gs://, ...) is returned as given, for the reader to reach. Invalid or Forbidden naming
    `field` and the fix otherwise (a path the file system refuses, too long say, included)."""
    try:
        return _resolve(path, allowed, field, output)
    except OSError as exc:
        raise Invalid(f"{field}: the server cannot look at this path ({exc.strerror}); give an existing "
                      f"absolute path of a sensible length (it begins {path[:60]!r})") from None


def _resolve(path: str, allowed: list[Path], field: str, output: bool) -> Path | str:
    if "://" in path:
        scheme, _, rest = path.partition("://")
        if scheme != "file":
            if allowed:
                raise Forbidden(f"{field}: {path!r} is a remote URI and this server reads only "
                                f"{', '.join(map(str, allowed))}; copy the data there or start the server "
                                "without --data-dir")
            return path
        path = rest
    file = Path(path)
    if not file.is_absolute():
        raise Invalid(f"{field}: {path!r} is relative; the server cannot know your working directory: "
                      "give an absolute path (the SDK and CLI resolve relative paths for you)")
    resolved = file.resolve()
    if allowed and not any(resolved.is_relative_to(root) for root in allowed):
        raise Forbidden(f"{field}: {resolved} is outside what this server may read "
                        f"({', '.join(map(str, allowed))}); move it there or start the server with --data-dir")
    if output:
        if not resolved.parent.is_dir() or not os.access(resolved.parent, os.W_OK):
            raise Invalid(f"{field}: {resolved.parent} does not exist or the server cannot write there")
        return resolved
    if not (resolved.is_file() or (field == "dataset" and resolved.is_dir())):
        raise Invalid(f"{field}: {resolved} does not exist on the server (or is not a file)")
    if not os.access(resolved, os.R_OK):
        raise Forbidden(f"{field}: {resolved} is not readable by the server's user")
    return resolved


class Admission:
    """Checks at submission: the dataset (absolute, readable by the server, inside its data
    dirs, schema valid) and whether the job can ever fit the cluster."""

    def __init__(self, server: Server):
        self.server = server
        self._tables: dict[tuple, dict] = {}  # (path, size, mtime, label, categorical) -> measured TableInfo

    def prepare(self, job: TrainingJob) -> dict:
        """A training job's stored spec: its dataset resolved and measured, its device kinds and
        algorithm derived, its clusters known; Invalid or Forbidden naming the field otherwise."""
        from runtime.data.roots import DataPathError, check_remote_uri, is_remote
        from runtime.server.domain.clusters import clusters_status

        spec = job.model_dump()
        if job.dataset:
            try:
                path = (check_remote_uri(job.dataset, self.server.options.s3_endpoints, "dataset")
                        if is_remote(job.dataset) else resolve_dataset(job.dataset, self.server.options.data_dirs))
            except DataPathError as exc:
                raise for_status(exc.status, exc) from None
            spec["dataset"] = str(path)
            if job.label:
                spec["_dataset"] = self._inspect(path, job.label, job.categorical)
        kinds, model = job.device_kinds()
        spec.update(_device_kinds=list(kinds), _device_model=model, _algorithm=job.algorithm)
        known = {c["name"] for c in clusters_status(self.server)} if job.clusters else set()
        unknown = sorted(set(job.clusters) - known)
        if unknown:
            raise Invalid(f"spec.clusters: {unknown[0]!r} is not a cluster of this server (known: "
                          f"{', '.join(sorted(known))}); register it with suanli clusters add")
        return spec

    def _inspect(self, path: Path, label: str, categorical: list[str]) -> dict:
        """The dataset's schema checks and measurements, once per version of the file (a changed
        size or mtime measures it again)."""
        stat = path.stat() if isinstance(path, Path) else None
        key = (str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None, label, tuple(categorical))
        if key not in self._tables:
            try:
                self._tables[key] = asdict(inspect_table(path, label, categorical))
            except DatasetError as exc:
                raise Invalid(str(exc)) from None
            if len(self._tables) > MAX_TABLES_MEASURED:
                self._tables.pop(next(iter(self._tables)))
        return dict(self._tables[key])

    def prepare_features(self, job: FeatureJob) -> dict:
        """A feature job's stored spec: its input measured (rows, bytes) and its columns checked,
        its output new, both inside the tenant's data root; Invalid, Forbidden or Conflict naming the
        field otherwise."""
        from runtime.data.roots import DataPathError
        from runtime.features import FeatureInputError, check_columns, feature_paths, table_rows_and_columns

        try:
            source, output, roots = feature_paths(job, self.server.options.data_dirs)
        except DataPathError as exc:
            raise for_status(exc.status, exc) from None
        try:
            rows, columns = table_rows_and_columns(source)
            check_columns(job.model_dump(), columns, source)
        except FeatureInputError as exc:
            raise Invalid(str(exc)) from None
        return {**job.model_dump(), "input": str(source), "output": str(output), **roots, "_kind": "features",
                "_algorithm": "features", "_device_kinds": list(job.device_kinds()), "_device_model": None,
                "_dataset": {"path": str(source), "rows": rows, "bytes": source.stat().st_size, "columns": columns},
                "workers": 1, "epochs": 1, "preemptible": False, "max_failures": 1, "config": {}}

    def rejection_for(self, tenant: str, workers: int, spec: dict) -> str | None:
        """Why a job can never fit the cluster, or None."""
        request = JobRequest(id="submission", tenant=tenant, workers=workers,
                             allowed_kinds=tuple(spec["_device_kinds"]), device_model=spec["_device_model"])
        found = check_submission(request, self.server.current_snapshot())
        return found.reason if found else None
