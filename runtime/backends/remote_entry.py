"""The entrypoint of a Ray job that runs one attempt on a registered cluster (see ray_remote):

    python -m runtime.backends.remote_entry <run_dir>/launch.json

It connects to the cluster it was submitted to, starts the attempt's `AttemptRunner` beside
itself, and writes the runner's status to `<run_dir>/status.json` every second until the attempt
ends. A FENCED file in the run directory (the controller gave this attempt up when its cluster
was lost) stops the run and suppresses any further status: a stale run never reports a result.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

STATUS_EVERY_S = 1.0


def main(launch_path: str) -> int:
    import ray

    from runtime.placement_to_ray import NODE_ID_LABEL
    from runtime.rundir import AttemptDir
    from runtime.training.attempt import AttemptRunner

    launch = json.loads(Path(launch_path).read_text())
    spec, placement = launch["spec"], launch["placement"]
    if spec.get("train_fn"):
        spec["train_fn"] = base64.b64decode(spec["train_fn"])
    attempt_dir = AttemptDir.at(spec["run_dir"])
    if attempt_dir.fenced():
        print(f"attempt {spec['attempt']} of {spec['job_id']} was fenced off before it started", flush=True)
        return 0
    ray.init(log_to_driver=True)
    here = ray.get_runtime_context().get_node_id()
    runner = AttemptRunner.options(label_selector={NODE_ID_LABEL: here}).remote()
    ray.get(runner.run.remote(spec, placement))
    fenced_noted = False
    while True:
        status = ray.get(runner.status.remote())
        if attempt_dir.fenced():
            if not fenced_noted:
                print("fenced: stopping the attempt; no status is reported any more", flush=True)
                ray.get(runner.stop.remote())
                fenced_noted = True
            if status["phase"] in ("succeeded", "failed", "stopped"):
                return 0
        else:
            attempt_dir.write_status({**status, "at": time.time()})
            if status["phase"] in ("succeeded", "failed", "stopped"):
                print(f"attempt ended: {status['phase']} {status.get('error') or ''}", flush=True)
                return 0
        time.sleep(STATUS_EVERY_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
