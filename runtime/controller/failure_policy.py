"""The one failure policy: an attempt that failed or was lost is retried (on a new placement)
while the job's retry budget lasts, else the job fails. Preemptions and cancellations are not
failures and consume nothing; Ray Train's own in-place retries are off, so this budget is the
only one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runtime.backends.base import AttemptStatus
from runtime.store import JobRecord


@dataclass(frozen=True)
class FailureDecision:
    action: Literal["retry", "fail"]
    reason: str


class FailurePolicy:
    """Retry while `failures < max_failures` (the job's spec); fail after."""

    def decide(self, record: JobRecord, status: AttemptStatus) -> FailureDecision:
        budget = int(record.spec.get("max_failures", 0))
        used = record.failures + 1
        cause = status.error or status.phase
        if used <= budget:
            return FailureDecision("retry", f"attempt {record.attempts} {status.phase}: {cause}; retrying on a new "
                                            f"placement ({used} of {budget} retries used)")
        return FailureDecision("fail", f"attempt {record.attempts} {status.phase}: {cause}" +
                               (f" (retry budget of {budget} spent)" if budget else ""))
