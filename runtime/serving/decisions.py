"""Payment decisions (JR/T 0202 4.3.5) from fraud probabilities: block, hold (for confirmation),
warn or pass per transaction. A score that is not a finite number is never "pass": it is "hold"."""

from __future__ import annotations

import math

DECISIONS = ("block", "hold", "warn")


def check_thresholds(thresholds: dict | None) -> dict | None:
    """Validate {"block": b, "hold": h, "warn": w} with 1 >= b >= h >= w >= 0."""
    if thresholds is None:
        return None
    if set(thresholds) != set(DECISIONS):
        raise ValueError(f"thresholds: give exactly block, hold and warn (got {sorted(thresholds)})")
    b, h, w = (float(thresholds[k]) for k in DECISIONS)
    if not 1 >= b >= h >= w >= 0:
        raise ValueError(f"thresholds: need 1 >= block >= hold >= warn >= 0, got {b}, {h}, {w}")
    return {"block": b, "hold": h, "warn": w}


def decide(score: float, thresholds: dict) -> str:
    """The decision for one probability."""
    if not math.isfinite(score):
        return "hold"
    if score >= thresholds["block"]:
        return "block"
    if score >= thresholds["hold"]:
        return "hold"
    return "warn" if score >= thresholds["warn"] else "pass"
