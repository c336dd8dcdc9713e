"""A Ray Train callback that writes down where the worker group really runs: each worker's rank
and node, and the placement group that holds their devices (so a forced stop can release it)."""

from __future__ import annotations

from ray.train.v2._internal.execution.callback import WorkerGroupCallback

from runtime.rundir import AttemptDir


class WorkerGroupRecorder(WorkerGroupCallback):
    """Records the worker group in the attempt directory once it has started."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def after_worker_group_start(self, worker_group) -> None:
        workers = [{"rank": w.distributed_context.world_rank if w.distributed_context else i,
                    "node_id": w.metadata.node_id, "pid": w.metadata.pid}
                   for i, w in enumerate(worker_group.get_workers())]
        group = worker_group.get_worker_group_state().placement_group_handle.placement_group
        AttemptDir.at(self.run_dir).write_worker_group({"placement_group": group.id.hex(), "workers": workers})
