"""Outlier detection for an edge, as in Envoy's locality failover: after `eject_after`
consecutive failures (an error, or no answer within the deadline) the edge is skipped for `eject_s`
seconds. After the pause it is half-open, as a circuit breaker: one trial request at a time goes to
the edge while the others go to the centre; the trial's answer gives the edge its traffic back, its
failure starts another pause. So while an edge is gone, one request per pause spends a deadline on
it, not every request sent while the first failures were still in flight. The router keeps one per
site and so does the scoring client. Pure bookkeeping: the clock is passed in."""

from __future__ import annotations


class EdgeHealth:
    """Consecutive edge failures, the pause they cause, and the half-open trial after it."""

    def __init__(self, eject_after: int, eject_s: float):
        self.eject_after, self.eject_s = eject_after, eject_s
        self.failures, self.ejected_until = 0, 0.0
        self.trial_in_flight = False

    def admit(self, now: float) -> bool:
        """Whether this request goes to the edge: always while it is healthy; during a pause never;
        after one, only when no trial request is in flight (this one becomes the trial). A caller
        told yes reports the outcome with `answered()` or `failed()`."""
        if self.ejected_until == 0.0:
            return True
        if now < self.ejected_until or self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def state(self, now: float) -> str:
        """"healthy", "paused" (skipped until the pause ends) or "half-open" (one trial at a time)."""
        if self.ejected_until == 0.0:
            return "healthy"
        return "paused" if now < self.ejected_until else "half-open"

    def failed(self, now: float) -> None:
        """An edge request failed: counts towards a pause, or ends a trial with a new pause."""
        if self.trial_in_flight:
            self.trial_in_flight, self.failures = False, 0
            self.ejected_until = now + self.eject_s
            return
        self.failures += 1
        if self.failures >= self.eject_after:
            self.ejected_until = now + self.eject_s
            self.failures = 0

    def answered(self) -> None:
        """An edge request was answered: the edge is healthy again."""
        self.failures, self.ejected_until, self.trial_in_flight = 0, 0.0, False
