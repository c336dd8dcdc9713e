"""Control-plane figures, each measured in one run on an emulated 3-node cluster (one core per
node) started here, with `suanli server` processes joining it:

- failover (per trial, fresh state directory): two servers on one state directory; a 2-worker job
  runs; the active server is SIGKILLed; the standby takes the lease. `takeover_s` is the time from
  the kill to the standby answering `active`; `duplicate_attempts` counts attempts beyond the
  first (the job must be adopted, not relaunched); `jobs_lost` counts jobs not SUCCEEDED exactly
  once; `decided_equals_executed` is the fraction of workers that ran on the node their placement
  named (from Ray Train's own worker metadata);
- `submit_latency_ms`: POST /jobs through HTTP with the SDK's HTTP client (token, dataset checks,
  snapshot, store, audit) while the cluster is full (a 3-worker job whose workers hold their cores
  and compute nothing), so the jobs wait and the controller reschedules a growing queue; p50, p99;
- overhead: the same short 1-worker Ray Train job through suanli (submit -> SUCCEEDED) and run
  directly with Ray Train's TorchTrainer from this driver, on the same cluster;
- production round (`--only round`, written to control_plane_round.json): one controller round,
  store reads included, with 10,000 jobs queued on a full 100-node cluster, on SQLite and on
  PostgreSQL, while submissions arrive at 20/s (benchmarks/_round.py); goals p99 <= 200 ms per
  round, <= 50 ms per submission.

    python benchmarks/control_plane.py --trials 3 --json
    python benchmarks/control_plane.py --only round --queued 10000 --json
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from benchmarks._common import SHARED_DATA, emit  # noqa: E402

LEASE_TTL, LEASE_RENEW = 4.0, 1.0
DATASET = SHARED_DATA / "credit" / "australian_credit.csv"


def log(message: str) -> None:
    print(f"[control_plane {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_servers(address: str, state_dir: Path, count: int) -> dict:
    from runtime.server.local import start_server

    procs = {}
    for i in range(count):
        proc, url = start_server(state_dir, "--ray-address", address, "--lease-ttl", str(LEASE_TTL), "--lease-renew",
                                 str(LEASE_RENEW), port=_free_port(), log_name=f"server-{i}.log")
        procs[url] = proc
    return procs


def stop_servers(procs: dict) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        proc.wait(timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _role(url: str) -> str | None:
    import httpx

    try:
        return httpx.get(url + "/healthz", timeout=2).json()["role"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def failover_trial(address: str, trial: int) -> dict:
    from runtime import Client, TrainingJob

    state = Path(tempfile.mkdtemp(prefix=f"suanli-cp-{trial}-"))
    procs = start_servers(address, state, 2)
    try:
        _wait(lambda: sorted(_role(u) or "" for u in procs) == ["active", "standby"], 30, "one active server")
        active = next(u for u in procs if _role(u) == "active")
        standby = next(u for u in procs if u != active)
        with Client(address=standby, state_dir=state) as client:
            job = client.submit(TrainingJob(name=f"failover-{trial}", dataset=str(DATASET), label="class", workers=2,
                                            device="cpu", epochs=5, hidden=[32], config={"seconds_per_epoch": 1.5},
                                            max_failures=0))
            _wait(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 1, 300, "the first epoch")
            killed = time.time()
            procs[active].send_signal(signal.SIGKILL)
            procs[active].wait()
            _wait(lambda: _role(standby) == "active", 60, "the standby to take over")
            takeover = time.time() - killed
            state_now = job.wait(timeout=600).value
            info = job.info()
            kinds = [e["kind"] for e in job.events()]
            environment = job.result().provenance["modelling"]["environment"] if state_now == "SUCCEEDED" else {}
        placed = sorted(a["node_id"] for a in info["placement"]["assignments"] for _ in range(a["workers"]))
        ran = sorted(w["node_id"] for w in environment.get("nodes", []))
        on_placed = sum(1 for node in ran if node in placed)
        return {"takeover_s": round(takeover, 3), "state": state_now, "attempts": info["attempts"],
                "succeeded_events": kinds.count("SUCCEEDED"), "workers": len(ran), "workers_on_placed_node": on_placed}
    finally:
        stop_servers(procs)


def _hold(config):
    """A filler job's workers: they hold their cores and compute nothing (the measurement is of the
    control plane, not of a training job's bursts on this 2-core machine)."""
    import time as clock

    while True:
        clock.sleep(1)


def submit_latency(address: str, submissions: int) -> dict:
    from runtime import Client, TrainingJob
    from runtime.client import http_client

    state = Path(tempfile.mkdtemp(prefix="suanli-cp-latency-"))
    procs = start_servers(address, state, 1)
    try:
        [url] = procs
        with Client(address=url, state_dir=state) as client:
            filler = client.submit(TrainingJob(name="filler", train_fn=_hold, workers=3, device="cpu"))
            _wait(lambda: filler.status().value == "RUNNING", 300, "the cluster to fill")
            body = {"spec": {"name": "latency", "dataset": str(DATASET), "label": "class", "device": "cpu",
                             "workers": 1, "epochs": 1}}
            times, ids = [], []
            token = (state / "admin.token").read_text().strip()
            with http_client(url, token=token) as http:  # the SDK's own HTTP client
                for _ in range(submissions):
                    start = time.perf_counter()
                    response = http.post("/jobs", json=body)
                    times.append((time.perf_counter() - start) * 1000)
                    response.raise_for_status()
                    ids.append(response.json()["id"])
                waiting = sum(1 for i in ids if http.get(f"/jobs/{i}").json()["state"] == "QUEUED")
                for i in ids + [filler.id]:
                    http.post(f"/jobs/{i}/cancel", json={"actor": "benchmark"})
            _wait(lambda: filler.status().value == "CANCELLED", 120, "the filler to stop")
        times.sort()
        return {"submissions": submissions, "p50": round(times[len(times) // 2], 2),
                "p99": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2), "max": round(times[-1], 2),
                "queued_while_measured": waiting}
    finally:
        stop_servers(procs)


def overhead(address: str, jobs: int) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from runtime import Client, TrainingJob

    def short(config):
        import ray.train

        ray.train.report({"done": 1})

    scratch = Path(tempfile.mkdtemp(prefix="suanli-cp-overhead-"))
    raw = []
    for i in range(jobs):
        start = time.perf_counter()
        TorchTrainer(short, scaling_config=ScalingConfig(num_workers=1),
                     run_config=RunConfig(name=f"raw-{i}", storage_path=str(scratch / "raw"))).fit()
        raw.append(time.perf_counter() - start)
    procs = start_servers(address, scratch / "state", 1)
    through = []
    try:
        [url] = procs
        with Client(address=url, state_dir=scratch / "state") as client:
            for i in range(jobs):
                start = time.perf_counter()
                job = client.submit(TrainingJob(name=f"short-{i}", train_fn=short, workers=1, device="cpu"))
                if job.wait(timeout=300, poll_s=0.05).value != "SUCCEEDED":
                    raise RuntimeError(job.logs())
                through.append(time.perf_counter() - start)
    finally:
        stop_servers(procs)
    return {"jobs": jobs, "raw_ray_train_s_median": round(statistics.median(raw), 2),
            "suanli_s_median": round(statistics.median(through), 2),
            "ratio": round(statistics.median(through) / statistics.median(raw), 2)}


def production_round(args) -> None:
    """The production round on SQLite and PostgreSQL (see the module docstring)."""
    from benchmarks._postgres import throwaway_postgres
    from benchmarks._round import measure_round

    results = [measure_round(None, args.queued, 100, args.rounds, 20.0, log)]
    log(f"sqlite: {results[-1]}")
    with throwaway_postgres() as url:
        results.append(measure_round(url, args.queued, 100, args.rounds, 20.0, log))
    log(f"postgresql: {results[-1]}")
    result = {"queued": args.queued, "nodes": 100, "goal_round_p99_ms": 200, "goal_submit_p99_ms": 50,
              "stores": results}
    markdown = f"| controller round, {args.queued:,} queued | " + "; ".join(
        f"{r['store']}: round p50 {r['round_p50_ms']} / p99 {r['round_p99_ms']} ms (read "
        f"{r['stage_median_ms']['read']}, requests {r['stage_median_ms']['requests']}, decide "
        f"{r['stage_median_ms']['decide']}, write {r['stage_median_ms']['write']} ms median), submit p99 "
        f"{r['submit_p99_ms']} ms" for r in results) + " |"
    emit("control_plane_round", result, markdown, args.json)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=["round"], help="Run one part alone: the production round.")
    parser.add_argument("--queued", type=int, default=10_000, help="Jobs queued for the production round.")
    parser.add_argument("--rounds", type=int, default=30, help="Rounds measured per store.")
    args = parser.parse_args()
    if args.only == "round":
        production_round(args)
        return
    from cluster.emulation import EmulatedCluster, parse_emulation

    spec = parse_emulation({"name": "bench-cp", "nodes": [{"tier": "center", "site": "dc1", "count": 3, "cpu": 1,
                                                           "memory_gb": 3}]})
    with EmulatedCluster(spec) as emulated:
        trials = []
        for trial in range(args.trials):
            trials.append(failover_trial(emulated.address, trial))
            log(f"failover trial {trial}: {trials[-1]}")
        latency = submit_latency(emulated.address, args.submissions)
        log(f"submit latency: {latency}")
        over = overhead(emulated.address, args.jobs)
        log(f"overhead: {over}")
    takeovers = [t["takeover_s"] for t in trials]
    workers = sum(t["workers"] for t in trials)
    result = {
        "trials": args.trials, "lease_ttl_s": LEASE_TTL, "lease_renew_s": LEASE_RENEW,
        "duplicate_attempts": sum(t["attempts"] - 1 for t in trials) + sum(max(0, t["succeeded_events"] - 1)
                                                                          for t in trials),
        "takeover_s": {"median": round(statistics.median(takeovers), 3), "max": round(max(takeovers), 3),
                       "goal_max": LEASE_TTL + 5},
        "jobs_lost": sum(1 for t in trials if t["state"] != "SUCCEEDED" or t["succeeded_events"] != 1),
        "decided_equals_executed": round(sum(t["workers_on_placed_node"] for t in trials) / workers, 4) if workers else None,
        "submit_latency_ms": latency, "overhead": over, "per_trial": trials,
    }
    markdown = (f"| control plane | {args.trials} SIGKILLs of the active server: duplicate attempts "
                f"{result['duplicate_attempts']}, jobs lost {result['jobs_lost']}, takeover median "
                f"{result['takeover_s']['median']} s / max {result['takeover_s']['max']} s (lease TTL {LEASE_TTL:g} s); "
                f"workers on their placed node {result['decided_equals_executed']}; submit p50 {latency['p50']} ms / "
                f"p99 {latency['p99']} ms; short job {over['suanli_s_median']} s through suanli vs "
                f"{over['raw_ray_train_s_median']} s raw Ray Train ({over['ratio']}x) |")
    emit("control_plane", result, markdown, args.json)


if __name__ == "__main__":
    main()
