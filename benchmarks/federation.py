"""Cluster loss and recovery across two real Ray clusters on this machine (standalone heads with
their own ports, temp dirs and tokens), behind one `suanli server` with its own embedded cluster.

Each trial: a training job (restricted to the two clusters) runs; after its first epoch the head
of its cluster is stalled for 3 s (SIGSTOP, then SIGCONT: a blip that must move nothing); after
its second epoch that head is SIGKILLed. Measured per trial:
- detection_s: kill -> the server reports the cluster lost;
- resumed_elsewhere_s: kill -> the job RUNNING on the other cluster;
- steps_repeated: epochs that both attempts ran (the work lost to the kill);
- duplicate_runs: SUCCEEDED events beyond one, plus status written by the fenced run after its fence;
- false_failovers: attempts fenced during the blip; jobs_lost: jobs not SUCCEEDED.
The killed cluster is replaced by a new head under the same name before the next trial.

    python benchmarks/federation.py --trials 10 --json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO, SHARED_DATA, emit  # noqa: E402

ANCHORS = {"skypilot_managed_jobs": "controller polls every 15 s; 60 s of failed status fetches before recovery",
           "kueue_multikueue": "workerLostTimeout 15 min", "karmada": "cluster failure after 40 s, eviction after 300 s"}


def progress(message: str) -> None:
    print(f"[federation {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def percentile_summary(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(float(np.percentile(values, 50)), 2), "max": round(max(values), 2)}


def epochs_of(run_dir: Path) -> set[int]:
    from runtime.rundir import AttemptDir

    return {line["epoch"] for line in AttemptDir.at(run_dir).progress()}


def run_trial(client, heads: dict, trial: int) -> dict:
    """One job, one 3 s stall of its cluster's head, then that head SIGKILLed; what happened."""
    from runtime import TrainingJob

    job = client.submit(TrainingJob(name=f"fed-{trial}", dataset=str(SHARED_DATA / "credit" / "australian_credit.csv"),
                                    label="class", workers=1, device="cpu", epochs=6, hidden=[16],
                                    config={"seconds_per_epoch": 1.5}, max_failures=0, clusters=["fa", "fb"]))
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 1, 300, "the first epoch", 0.3)
    first = job.info()["placement"]["cluster"]
    head = heads[first]
    head.signal(signal.SIGSTOP)
    time.sleep(3)
    head.signal(signal.SIGCONT)
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 2, 300, "two epochs", 0.3)
    false_failovers = sum(1 for e in job.events() if "fenced" in e["detail"])
    killed = time.time()
    head.signal(signal.SIGKILL)
    lost_at = wait_for(lambda: any(c["name"] == first and c["health"] == "lost" for c in client.clusters())
                       and time.time(), 60, f"{first} lost")

    def running_elsewhere():
        info = job.info()
        return info["attempts"] >= 2 and info["state"] == "RUNNING" and time.time()

    running_at = wait_for(running_elsewhere, 180, "running elsewhere", 0.2)
    final = job.wait(timeout=300)
    from runtime.rundir import STATUS_FILE

    events = job.events()
    attempts = {a["number"]: a for a in client.request("GET", f"/jobs/{job.id}/placement")["attempts"]}
    stale_dir = Path(attempts[1]["handle"]["run_dir"])
    fence_event = next((e["at"] for e in events if "fenced" in e["detail"]), None)
    stale_status = stale_dir / STATUS_FILE
    late_status = bool(fence_event and stale_status.exists() and stale_status.stat().st_mtime > fence_event)
    repeated = epochs_of(stale_dir) & epochs_of(Path(attempts[max(attempts)]["handle"]["run_dir"]))
    return {"trial": trial, "cluster": first, "state": final.value, "detection_s": round(lost_at - killed, 2),
            "resumed_elsewhere_s": round(running_at - killed, 2), "steps_repeated": len(repeated),
            "false_failovers": false_failovers,
            "duplicate_runs": max(0, sum(1 for e in events if e["kind"] == "SUCCEEDED") - 1) + int(late_status),
            "attempts": len(attempts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from cluster.local_head import head_pids
    from cluster.standalone_head import start_head
    from runtime import Client
    from runtime.server.local import start_server, stop_local_server

    root = Path(tempfile.mkdtemp(prefix="sfb-", dir="/tmp"))
    heads = {}
    trials = []
    try:
        progress("starting two Ray clusters and a server")
        heads = {"fa": start_head("fa", root, site="bj"), "fb": start_head("fb", root, site="sh")}
        state = root / "state"
        _, url = start_server(state, "--data-dir", str(REPO.parent / "shared"))
        client = Client(address=url, state_dir=state)

        def register(head):
            client.add_cluster(head.name, head.address, head.site, token_file=head.token_file)
            wait_for(lambda: {c["name"]: c["health"] for c in client.clusters()}.get(head.name) == "healthy", 30,
                     f"{head.name} healthy")

        for head in heads.values():
            register(head)
        for trial in range(args.trials):
            record = run_trial(client, heads, trial)
            trials.append(record)
            progress(f"trial {trial}: {record}")
            first = record["cluster"]
            heads[first].stop()
            heads[first] = start_head(first, root, site=heads[first].site)
            client.remove_cluster(first)
            register(heads[first])
    finally:
        stop_local_server(root / "state")  # the server by pid, then its own embedded head
        for head in heads.values():
            head.stop()
        for pid in head_pids(str(root / "state" / "runs")):  # drivers left by the killed heads
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    detection = [t["detection_s"] for t in trials]
    resumed = [t["resumed_elsewhere_s"] for t in trials]
    result = {"trials": len(trials), "detection_s": percentile_summary(detection),
              "resumed_elsewhere_s": percentile_summary(resumed),
              "steps_repeated_max": max((t["steps_repeated"] for t in trials), default=None),
              "duplicate_runs": sum(t["duplicate_runs"] for t in trials),
              "false_failovers": sum(t["false_failovers"] for t in trials), "blips": len(trials),
              "jobs_lost": sum(1 for t in trials if t["state"] != "SUCCEEDED"),
              "settings": {"probe_interval_s": 2, "probe_timeout_s": 2, "lost_after_missed": 3, "blip_s": 3,
                           "checkpoint_every_epochs": 1, "seconds_per_epoch": 1.5},
              "anchors": ANCHORS, "per_trial": trials}
    markdown = (f"| federation | {len(trials)} head kills: detection p50 {result['detection_s'].get('p50')} s "
                f"(max {result['detection_s'].get('max')}), running on the other cluster p50 "
                f"{result['resumed_elsewhere_s'].get('p50')} s (max {result['resumed_elsewhere_s'].get('max')}), "
                f"epochs repeated <= {result['steps_repeated_max']}, {result['duplicate_runs']} duplicate runs, "
                f"{result['false_failovers']} false failovers in {len(trials)} 3 s stalls, {result['jobs_lost']} jobs lost "
                f"| SkyPilot: 15 s polls + 60 s grace; Kueue MultiKueue: 15 min |")
    emit("federation", result, markdown, args.json)


if __name__ == "__main__":
    main()
