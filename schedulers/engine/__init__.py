"""One scheduling round: `schedule(queue, state, now, policy, running, config) -> Decisions`.

Pure: no Ray, no I/O, no clock (`now` is an argument), so the same code decides in production
and in the trace simulator. The engine owns the queue semantics every policy shares:

- gangs: a job's workers are placed all at once in one pool (one cluster, device kind and model,
  tier and site), or not at all (`gang=False` jobs may start with fewer workers);
- priorities with preemption: a blocked job may preempt preemptible running jobs of lower
  priority (they resume from their checkpoint later);
- quotas with borrowing: a tenant beyond its quota may borrow idle devices if its job is
  preemptible; the quota's owner reclaims them by preemption when it needs them;
- backfill: the first blocked job gets a reservation (pool and start time, from running jobs'
  expected ends); later jobs may use that pool only if they finish before it or leave enough
  free for it;
- ageing: a job's priority rises by one for every `ageing_interval_s` it waits;
- rejection: a job that can never fit (16 GPUs asked of a cluster that has 8) is rejected;
- time-sharing (policies with `time_shares`): running preemptible jobs compete with waiting ones
  every round, and those that lose their place are preempted.

The rooms, Kueue-style (the cycle in one file, each mechanism in its own):

- `cycle`: the round itself (`schedule`): feasibility, the policy's order, then each job placed,
  preempted for, reserved for or explained;
- `feasibility`: which jobs can never fit the cluster (rejected with the reason);
- `profiles`: per job kind, its candidate pools and the per-pool rates and bandwidths;
- `placement`: which pool and nodes a job takes: the job table and compiled runs, or `choose` job by job;
- `compiled`: the compiled loops (numba) that decide runs of jobs and a time-sharing admission;
- `quota`: devices in use per tenant and cap, quotas with borrowing, hard caps;
- `preemption`: making room by preempting running jobs, and the time-sharing re-admission;
- `backfill`: when running jobs free their devices, and the reservation of the first blocked job;
- `explain`: why a job waits and when it may start;
- `config`: `SchedulerConfig` and `RunningJob`.
"""

from schedulers.engine.config import RunningJob, SchedulerConfig
from schedulers.engine.cycle import schedule
from schedulers.engine.feasibility import can_ever_fit, check_submission

__all__ = ["RunningJob", "SchedulerConfig", "can_ever_fit", "check_submission", "schedule"]
