"""Checkpoints every built-in model writes: a directory with the model's file (`state.pt`,
`model.ubj` or `model.txt`), the job's split plan and preprocessing graph (so an attempt on any
node resumes with exactly the same rows and features), and `meta.json` holding the epoch and the
sha256 over all the other files, which the controller records in the store and checks on resume,
evaluation and export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CHECKPOINT_META = "meta.json"
MODEL_FILES = {"mlp": "state.pt", "logistic": "state.pt", "xgboost": "model.ubj", "lightgbm": "model.txt"}


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_digest(directory: str | Path) -> str:
    """The sha256 over the names and sha256s of every file of a checkpoint but `meta.json`."""
    folder = Path(directory)
    lines = [f"{p.relative_to(folder)}:{file_sha256(p)}\n" for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != CHECKPOINT_META]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def write_meta(directory: str | Path, epoch: int, model: str, **extra) -> dict:
    """Seal a checkpoint directory: write meta.json with its epoch and digest."""
    meta = {"epoch": epoch, "model": model, "model_file": MODEL_FILES.get(model), "sha256": checkpoint_digest(directory),
            **extra}
    (Path(directory) / CHECKPOINT_META).write_text(json.dumps(meta))
    return meta


def read_meta(directory: str | Path) -> dict:
    return json.loads((Path(directory) / CHECKPOINT_META).read_text())


def verify_checkpoint(directory: str | Path, sha256: str | None) -> Path:
    """The checkpoint's directory after checking its files against `sha256` (the one recorded when
    it was written); ValueError naming the directory when they differ."""
    folder = Path(directory)
    if not (folder / CHECKPOINT_META).exists():
        raise ValueError(f"checkpoint: {folder} has no {CHECKPOINT_META}; it was not written by suanli")
    if sha256 is not None and checkpoint_digest(folder) != sha256:
        raise ValueError(f"checkpoint: {folder} does not match the sha256 recorded when it was written")
    return folder


def load_torch_state(directory: str | Path, sha256: str | None = None) -> dict:
    """A torch checkpoint's `state.pt` (tensors and plain values only), after `verify_checkpoint`."""
    import torch

    return torch.load(verify_checkpoint(directory, sha256) / "state.pt", weights_only=True)
