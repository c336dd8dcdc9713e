"""A Ray Train callback that writes down where the worker group really runs: each worker's rank
and node, and the placement group that holds their devices (so a forced stop can release it)."""

from __future__ import annotations

import json
from pathlib import Path

from ray.train.v2._internal.execution.callback import WorkerGroupCallback

WORKER_GROUP_FILE = "worker_group.json"


class WorkerGroupRecorder(WorkerGroupCallback):
    """Writes `run_dir/worker_group.json` once the worker group has started."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def after_worker_group_start(self, worker_group) -> None:
        workers = [{"rank": w.distributed_context.world_rank if w.distributed_context else i,
                    "node_id": w.metadata.node_id, "pid": w.metadata.pid}
                   for i, w in enumerate(worker_group.get_workers())]
        group = worker_group.get_worker_group_state().placement_group_handle.placement_group
        path = Path(self.run_dir) / WORKER_GROUP_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"placement_group": group.id.hex(), "workers": workers}))
        tmp.replace(path)


def read_worker_group(run_dir: str | Path) -> dict | None:
    """What the recorder wrote for an attempt, or None before its workers started."""
    path = Path(run_dir) / WORKER_GROUP_FILE
    return json.loads(path.read_text()) if path.exists() else None
