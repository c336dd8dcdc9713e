"""The controller: one active holder of the lease schedules and launches; standbys wait.

`lease_keeper.LeaseKeeper` holds the lease, `controller.JobController` drives jobs through the
state machine of `runtime.specs`, `failure_policy.FailurePolicy` decides retry or fail, and
`requests.job_request` turns a stored job (and what was measured of it) into the scheduler's
`JobRequest`.
"""
