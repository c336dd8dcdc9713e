"""Loading measured throughput profiles (`suanli bench --save-profile`) into the scheduler's model."""

from __future__ import annotations

import json
import os
from pathlib import Path

from schedulers.throughput import ThroughputModel

PROFILE_ENV = "SUANLI_THROUGHPUT_PROFILE"


def load_throughput_model(path: str | Path | None = None) -> ThroughputModel:
    """The default ThroughputModel with the measured rates of `path` (or of the file named by
    SUANLI_THROUGHPUT_PROFILE) layered on top; the defaults alone when neither is given.
    Raises ValueError naming the file and the bad entry."""
    chosen = path or os.environ.get(PROFILE_ENV)
    if not chosen:
        return ThroughputModel()
    file = Path(chosen)
    if not file.exists():
        raise ValueError(f"throughput profile: {file} does not exist (from {'argument' if path else PROFILE_ENV})")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"throughput profile: {file}: not JSON ({exc})") from None
    try:
        return ThroughputModel().with_profile(data)
    except ValueError as exc:
        raise ValueError(f"throughput profile: {file}: {exc}") from None
