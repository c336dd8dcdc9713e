"""The traceability record of a training job (JR/T 0221-2021 6.4): data, code, environment,
operator, times, iterations, per-epoch metrics and parameter history. Exported as provenance.json."""

from __future__ import annotations

import hashlib
import platform
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None


def software_versions() -> dict:
    """Versions of Python and the libraries that shaped the model."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("suanli", "torch", "ray", "numpy", "pandas", "scikit-learn", "onnx", "onnxruntime"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def code_record(user_code: dict | None, model: str | None = None) -> dict:
    """What code trained the model: the user's function (its name, source as the client sent it,
    and the sha256 of the exact bytes the workers loaded), or the built-in loop's module."""
    if user_code is not None:
        source = user_code.get("source") or ""
        return {"source": user_code.get("name") or "train_fn", "sha256": user_code["sha256"],
                "source_sha256": hashlib.sha256(source.encode()).hexdigest(), "lines": source.count("\n")}
    from runtime.training import gbdt_loop, torch_loop

    module = gbdt_loop if (model or "") in ("xgboost", "lightgbm") else torch_loop
    source = Path(module.__file__).read_text()
    name = {"xgboost": "xgboost_train_loop", "lightgbm": "lightgbm_train_loop"}.get(model or "", "torch_train_loop")
    return {"source": f"{module.__name__}.{name}", "sha256": hashlib.sha256(source.encode()).hexdigest(),
            "lines": source.count("\n")}


def steps_repeated(progress: list[dict]) -> dict:
    """Epochs (and optimiser steps) trained more than once because of a restart."""
    seen: dict[int, int] = {}
    repeated_steps = 0
    for line in progress:
        if line["epoch"] in seen:
            repeated_steps += line.get("steps", 0)
        seen[line["epoch"]] = seen.get(line["epoch"], 0) + 1
    return {"epochs_repeated": sum(c - 1 for c in seen.values()), "steps_repeated": repeated_steps}


def build_provenance(*, job: dict, spec: dict, dataset: dict | None, placement: dict | None, nodes: list[dict],
                     user_code: dict | None, progress: list[dict], started: float | None, ended: float | None,
                     attempts: int, checkpoint: str | None, test_metrics: dict | None) -> dict:
    """The whole record as a JSON-ready dict."""
    return {
        "job": job,
        "operator": {"tenant": spec.get("tenant"), "user": spec.get("user")},
        "training_data": None if dataset is None else {
            "source": dataset["path"],
            "storage_location": f"{socket.gethostname()}:{dataset['path']}",
            "acquired_at": iso(Path(dataset["path"]).stat().st_mtime) if Path(dataset["path"]).exists() else None,
            "volume": {"bytes": dataset["bytes"], "rows": dataset["rows"], "columns": len(dataset["columns"])},
            "sha256": dataset["sha256"],
            "format": dataset["format"],
            "label": spec.get("label"),
            "categorical": spec.get("categorical"),
            "split": {"validation_fraction": spec.get("validation_fraction"), "test_fraction": spec.get("test_fraction"),
                      "seed": spec.get("seed")},
            "sampling": (f"stratified split by label (per class, exact counts; rows placed by a hash of their "
                         f"values, seed {spec.get('seed')}): test {spec.get('test_fraction')}, validation "
                         f"{spec.get('validation_fraction')}, train the rest; preprocessing fitted on training rows "
                         "only; each worker a shard (Ray Data)"),
        },
        "modelling": {
            "code": code_record(user_code, spec.get("model")),
            "environment": {"software": software_versions(), "placement": placement, "nodes": nodes},
            "started_at": iso(started),
            "ended_at": iso(ended),
            "iterations": {"epochs": len({p["epoch"] for p in progress}),
                           "optimiser_steps": sum(p.get("steps", 0) for p in progress)},
            "hyperparameters": {k: spec.get(k) for k in ("model", "hidden", "epochs", "batch_size", "learning_rate",
                                                          "class_weight", "workers", "seed", "checkpoint_every",
                                                          "trees", "max_depth", "early_stopping_rounds")},
            "epochs": progress,
            "attempts": attempts,
            "recovery": steps_repeated(progress),
            "final_checkpoint": checkpoint,
        },
        "evaluation": test_metrics,
    }
