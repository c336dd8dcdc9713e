"""Writing secrets (keys, tokens) so that no other user can ever read them: the file is created
with O_EXCL and mode 0600 from the start (never written first and narrowed after)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: str | Path, data: bytes, replace: bool = False) -> None:
    """Write `data` to `path`, readable by its owner alone. Without `replace`, FileExistsError when
    `path` exists; with it, a new 0600 file is moved over the old one atomically."""
    target = Path(path)
    fresh = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}") if replace else target
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if replace:
        fresh.replace(target)
