"""What every benchmark shares: the machine it ran on, and writing JSON plus one Markdown line."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def machine() -> dict:
    """Where the numbers came from."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": "none (CPU only)" if not Path("/proc/driver/nvidia").exists() else "present",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def emit(name: str, result: dict, markdown: str, as_json: bool) -> None:
    """Write results/<name>.json and results/<name>.md, and print JSON (with --json) or the line."""
    RESULTS.mkdir(exist_ok=True)
    result = {**result, "machine": machine()}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    print(json.dumps(result, indent=2) if as_json else markdown)
