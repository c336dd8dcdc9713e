"""The trace simulator on a trace of a million jobs: it streams the trace (jobs read as the clock
reaches them, forgotten when they finish) so its memory stays bounded, with progress on stderr.

    python benchmarks/simulator_scale.py --jobs 1000000 --json

The trace is Gavel's MSR seed-0 trace (986 jobs) repeated back to back, each copy shifted by the
copy's span, written line by line to a temporary file and read back line by line: nothing holds the
whole trace. Reports the wall time, the events per second and the peak resident memory of the
process (ru_maxrss) against the same run at `--small` jobs: the difference is what the extra jobs
cost (the ids kept for the duplicate check and 24 bytes of outcome per finished job).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import SHARED_DATA, emit  # noqa: E402

GAVEL = SHARED_DATA / "traces" / "gavel"


def write_trace(path: Path, jobs: int) -> None:
    """`jobs` lines of the seed-0 MSR trace, repeated with each copy's arrivals shifted past the last."""
    lines = (GAVEL / "traces" / "msr" / "seed=0" / "103959.trace").read_text().splitlines()
    rows = [line.split("\t") for line in lines if line.strip()]
    span = max(float(r[5]) for r in rows) + 3600.0
    with path.open("w") as out:
        for i in range(jobs):
            copy, row = divmod(i, len(rows))
            r = rows[row]
            out.write("\t".join([r[0], "cmd", r[2], r[3], r[4], f"{float(r[5]) + copy * span:.1f}", r[6]]) + "\n")


def simulate_file(path: Path, policy: str, time_scale: float) -> dict:
    """Stream `path` through the simulator; the metrics, wall time and peak RSS of this process."""
    from schedulers.policies import make_policy
    from schedulers.simulator.events import SimConfig, Simulation
    from schedulers.simulator.traces import iter_checked, iter_gavel_trace, parse_throughputs

    matrix = parse_throughputs(json.loads((GAVEL / "simulation_throughputs.json").read_text()))
    cluster = {"k80": 36, "p100": 36, "v100": 36}
    started = time.perf_counter()

    def progress(done: int, total: int | None) -> None:
        print(f"[{time.perf_counter() - started:.0f} s] {done} jobs finished, peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", file=sys.stderr, flush=True)

    with path.open() as lines:
        jobs = iter_checked(iter_gavel_trace(lines, str(path)), matrix, list(cluster), clamp=True)
        sim = Simulation(jobs, matrix, cluster, make_policy(policy), SimConfig(time_scale=time_scale),
                         progress=progress, progress_every=50_000)
        result = sim.run()
    return {"jobs": result["jobs"], "avg_jct_h": round(result["avg_jct_s"] / 3600, 3),
            "wall_s": round(time.perf_counter() - started, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="the run the memory is compared with")
    parser.add_argument("--policy", default="fifo")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # run one trace file in this process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(simulate_file(args.child, args.policy, args.time_scale)))
        return
    if args.jobs < 1 or args.small < 1:
        parser.error("--jobs and --small: must be >= 1")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.small, args.jobs):
            path = Path(tmp) / f"{n}.trace"
            write_trace(path, n)
            print(f"simulating {n} jobs ({path.stat().st_size / 2**20:.0f} MiB of trace) under {args.policy}",
                  file=sys.stderr, flush=True)
            child = subprocess.run([sys.executable, __file__, "--child", str(path), "--policy", args.policy,
                                    "--time-scale", str(args.time_scale)], stdout=subprocess.PIPE, text=True,
                                   check=True)  # a fresh process each, so ru_maxrss is this run's peak
            runs[n] = json.loads(child.stdout)
    small, large = runs[args.small], runs[args.jobs]
    per_job = (large["peak_rss_mib"] - small["peak_rss_mib"]) * 2**20 / max(1, args.jobs - args.small)
    result = {"policy": args.policy, "time_scale": args.time_scale, "runs": {str(k): v for k, v in runs.items()},
              "peak_rss_mib": large["peak_rss_mib"], "extra_bytes_per_job": round(per_job, 1)}
    markdown = (f"| simulator scale | {args.jobs} jobs streamed (Gavel MSR seed 0 repeated), {args.policy}, "
                f"36:36:36 | peak RSS {large['peak_rss_mib']:.0f} MiB vs {small['peak_rss_mib']:.0f} MiB at "
                f"{args.small} jobs ({per_job:.0f} bytes per extra job); {large['wall_s']:.0f} s | |")
    emit("simulator_scale", result, markdown, args.json)


if __name__ == "__main__":
    main()
