"""Outlier detection for an edge, as in Envoy's locality failover: after `eject_after`
consecutive failures (an error, or no answer within the deadline) the edge is skipped for `eject_s`
seconds; the first answer after the pause gives it traffic back. The router keeps one per site and
so does the scoring client, so that while an edge is gone neither spends a deadline (nor a trip
through the edge route) on each request. Pure bookkeeping: the clock is passed in."""

from __future__ import annotations


class EdgeHealth:
    """Consecutive edge failures and the pause they cause (pure bookkeeping; the clock is passed in)."""

    def __init__(self, eject_after: int, eject_s: float):
        self.eject_after, self.eject_s = eject_after, eject_s
        self.failures, self.ejected_until = 0, 0.0

    def usable(self, now: float) -> bool:
        return now >= self.ejected_until

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.eject_after:
            self.ejected_until = now + self.eject_s
            self.failures = 0

    def answered(self) -> None:
        self.failures = 0
        self.ejected_until = 0.0
