"""Checkpoints every built-in model writes: a directory with the model's file (`state.pt`,
`model.ubj` or `model.txt`), the job's split plan and preprocessing graph (so an attempt on any
node resumes with exactly the same rows and features), and `meta.json` holding the epoch and the
sha256 over all the other files, which the controller records in the store and checks on resume,
evaluation and export."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from runtime.rundir import CHECKPOINT_META, parse_object
from runtime.rundir import MAX_JSON_BYTES as MAX_META_BYTES

MODEL_FILES = {"mlp": "state.pt", "logistic": "state.pt", "xgboost": "model.ubj", "lightgbm": "model.txt"}


def file_sha256(path: Path) -> str:
    """The sha256 of a regular file's bytes; ValueError for a link, a FIFO or a device (a user's
    code can plant one in a checkpoint directory: /dev/zero would never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"checkpoint: {path} is not a regular file; remove it")
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_digest(directory: str | Path) -> str:
    """The sha256 over the names and sha256s of every file of a checkpoint but `meta.json`;
    ValueError when the checkpoint is a link or holds one (links are never followed)."""
    folder = Path(directory)
    if folder.is_symlink() or not folder.is_dir():
        raise ValueError(f"checkpoint: {folder} is not a directory (a link?); checkpoints are real directories")
    found: list[tuple[Path, str]] = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs:
            if (Path(parent) / name).is_symlink():
                raise ValueError(f"checkpoint: {Path(parent) / name} is a link; checkpoints hold no links")
        for name in files:
            path = Path(parent) / name
            if path.relative_to(folder) != Path(CHECKPOINT_META):
                found.append((path.relative_to(folder), file_sha256(path)))
    return hashlib.sha256("".join(f"{relative}:{sha}\n" for relative, sha in sorted(found)).encode()).hexdigest()


def write_meta(directory: str | Path, epoch: int, model: str, **extra) -> dict:
    """Seal a checkpoint directory: write meta.json with its epoch and digest."""
    meta = {"epoch": epoch, "model": model, "model_file": MODEL_FILES.get(model), "sha256": checkpoint_digest(directory),
            **extra}
    (Path(directory) / CHECKPOINT_META).write_text(json.dumps(meta))
    return meta


def read_meta(directory: str | Path) -> dict:
    """A checkpoint's meta.json (never through a link, at most 1 MiB); ValueError naming it."""
    path = Path(directory) / CHECKPOINT_META
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"checkpoint: {path} cannot be read ({exc.strerror}); it must be a regular file") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"checkpoint: {path} is not a regular file")
        data = f.read(MAX_META_BYTES + 1)
    if len(data) > MAX_META_BYTES:
        raise ValueError(f"checkpoint: {path} is over {MAX_META_BYTES:,} bytes")
    return parse_object(data, f"checkpoint: {path}")


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
