"""Loading measured throughput profiles (`suanli bench --save-profile`) into the scheduler's model.

Each profile rate may carry the regime it was measured in: `{"rows_per_batch": N}` for training
and inference, `{"events_per_job": N}` for the feature kernel, `{"rows_per_job": N}` for GBDT. A
GPU's rate depends on it by large factors (issue 27: an H200 trained the MLP at 1.8M samples/s at
batch 4,096 and 34M at 65,536), and the scheduler places large jobs, so:

- of several rates for one (algorithm, kind, model), the one measured in the largest regime wins;
- an accelerator rate measured below `ACCELERATOR_MIN_REGIME` (a launch-bound size) is not
  applied: the default estimate stays, and the entry is listed as skipped with the reason.

Entries without a regime (profiles written before it was recorded) apply as they always did.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from schedulers.throughput import ThroughputModel

PROFILE_ENV = "SUANLI_THROUGHPUT_PROFILE"
REGIME_UNITS = ("rows_per_batch", "rows_per_job", "events_per_job")
# Below these sizes a GPU spends its time launching kernels, not computing (kernels/sizing.py).
ACCELERATOR_MIN_REGIME = {"rows_per_batch": 16_384, "rows_per_job": 100_000, "events_per_job": 1_000_000}


def _regime(entry, where: str) -> tuple[str, int] | None:
    regime = entry.get("regime") if isinstance(entry, dict) else None
    if regime is None:
        return None
    if not isinstance(regime, dict) or len(regime) != 1 or next(iter(regime)) not in REGIME_UNITS:
        raise ValueError(f"{where}.regime: must be one of {{{', '.join(f'{u}: N' for u in REGIME_UNITS)}}}, "
                         f"got {regime!r}")
    unit, size = next(iter(regime.items()))
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{where}.regime.{unit}: must be a positive integer, got {size!r}")
    return unit, size


def select_entries(profile: dict) -> tuple[list[dict], list[dict]]:
    """(entries to apply, entries skipped with a `reason`): per (algorithm, kind, model) the
    largest-regime rate; accelerator rates below `ACCELERATOR_MIN_REGIME` skipped. Raises
    ValueError naming a malformed regime."""
    entries = profile.get("throughputs") if isinstance(profile, dict) else None
    if not isinstance(entries, list):
        raise ValueError("profile.throughputs: must be a list of {algorithm, kind, model, units_per_s}")
    chosen: dict[tuple, tuple[int, int, dict]] = {}
    skipped = []
    for i, entry in enumerate(entries):
        regime = _regime(entry, f"profile.throughputs[{i}]")
        if not isinstance(entry, dict) or regime is None:
            chosen[("unkeyed", i)] = (0, i, entry)
            continue
        unit, size = regime
        if entry.get("kind") != "cpu" and size < ACCELERATOR_MIN_REGIME[unit]:
            skipped.append({**entry, "reason": f"{unit} {size:,} is below {ACCELERATOR_MIN_REGIME[unit]:,}: a "
                                               f"launch-bound rate, not what a large job gets"})
            continue
        key = (entry.get("algorithm"), entry.get("kind"), str(entry.get("model")))
        if key not in chosen or size > chosen[key][0]:
            chosen[key] = (size, i, entry)
    return [entry for _, _, entry in sorted(chosen.values(), key=lambda c: c[1])], skipped


def load_throughput_model(path: str | Path | None = None) -> ThroughputModel:
    """The default ThroughputModel with the measured rates of `path` (or of the file named by
    SUANLI_THROUGHPUT_PROFILE) layered on top, chosen by regime (`select_entries`); the defaults
    alone when neither is given. Raises ValueError naming the file and the bad entry."""
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
        ThroughputModel().with_profile(data)  # every entry valid, named by its place in the file
        entries, _ = select_entries(data)
        return ThroughputModel().with_profile({"throughputs": entries})
    except ValueError as exc:
        raise ValueError(f"throughput profile: {file}: {exc}") from None
