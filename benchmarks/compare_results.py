"""Compare benchmark results with the last committed ones and list what got worse.

    python benchmarks/scheduler_throughput.py --nodes 1000 --jobs 10000 --json   # rewrites results/...
    python benchmarks/compare_results.py benchmarks/results/scheduler_throughput_1000.json
    python benchmarks/compare_results.py --tolerance 0.25            # every scheduler_*.json

Each file is compared with its version at `--rev` (default HEAD: `git show HEAD:<path>`), or with
`--baseline FILE`. Every number whose path names a known measure is compared: higher is better for
rates (`decisions_per_s...`), lower is better for times and ratios to the peer (`avg_jct`,
`makespan`, `round_s`, `..._over_gavel_las`). A change worse than `--tolerance` (relative, default
0.10) is a regression. Prints one line per regression and exits 1 if there is any, 2 if a file
cannot be read, 0 otherwise. No tests and no timing of its own: it only reads JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HIGHER_IS_BETTER = ("decisions_per_s", "decisions_per_cpu_s")
LOWER_IS_BETTER = ("avg_jct", "p99_jct", "makespan", "round_s", "_over_gavel_las")
# context, noisy detail reported elsewhere, or a bound that is not a measure of the scheduler
IGNORED = ("machine", "scaling", "stages", "sim_cpu_s", "lower_bound_avg_jct_s", "lower_bound_avg_jct_h",
           "lower_bound_over_gavel_las")


def flatten(value, prefix: str = "") -> dict[str, float]:
    """{'a.b.0.c': number} for every number (bools excluded) in nested dicts and lists."""
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key) not in IGNORED:
                out.update(flatten(inner, f"{prefix}{key}."))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}{row_name(inner, i)}."))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[prefix.rstrip(".")] = float(value)
    return out


def row_name(row, position: int) -> str:
    """A list item's name in a path: 'seed=0,time_scale=8.0' for a simulation row (so rows match
    by what they ran, not by position, when the set of runs changes), else its position."""
    if isinstance(row, dict) and "seed" in row and "time_scale" in row:
        return f"seed={row['seed']},time_scale={float(row['time_scale'])}"
    return str(position)


def direction(path: str) -> int:
    """+1 when a larger value is better, -1 when a smaller one is, 0 when the number is not a measure."""
    leaf = path.rsplit(".", 1)[-1]
    if any(leaf.startswith(h) for h in HIGHER_IS_BETTER):
        return 1
    if any(m in leaf for m in LOWER_IS_BETTER):
        return -1
    return 0


def regressions(old: dict, new: dict, tolerance: float) -> list[str]:
    """One line per measure present in both whose new value is worse than the old by more than
    `tolerance` (relative to the old value)."""
    before, after = flatten(old), flatten(new)
    lines = []
    for path in sorted(before.keys() & after.keys()):
        sign = direction(path)
        was, now = before[path], after[path]
        if sign == 0 or was == 0:
            continue
        worse = (was - now) / abs(was) if sign > 0 else (now - was) / abs(was)
        if worse > tolerance:
            lines.append(f"{path}: {was:g} -> {now:g} ({worse:+.1%} worse, tolerance {tolerance:.0%})")
    return lines


def committed(path: Path, rev: str) -> dict:
    """The JSON of `path` at git revision `rev`."""
    rel = path.resolve().relative_to(REPO)
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{rel.as_posix()}"], capture_output=True, text=True)
    if shown.returncode != 0:
        raise FileNotFoundError(f"{rel} at {rev}: {shown.stderr.strip() or 'not found'}")
    return json.loads(shown.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="new results (default: results/scheduler_*.json)")
    parser.add_argument("--rev", default="HEAD", help="git revision holding the baseline (default HEAD)")
    parser.add_argument("--baseline", type=Path, help="compare with this file instead of git (one file only)")
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    if not 0 <= args.tolerance < 10:
        parser.error(f"--tolerance: must be a fraction in [0, 10), got {args.tolerance}")
    files = args.files or sorted((REPO / "benchmarks" / "results").glob("scheduler_*.json"))
    if args.baseline and len(files) != 1:
        parser.error("--baseline: compare exactly one file with it")
    found = 0
    for path in files:
        try:
            new = json.loads(path.read_text())
            old = json.loads(args.baseline.read_text()) if args.baseline else committed(path, args.rev)
        except (OSError, ValueError) as exc:
            print(f"{path}: cannot compare: {exc}", file=sys.stderr)
            return 2
        lines = regressions(old, new, args.tolerance)
        found += len(lines)
        print(f"{path.name}: " + ("no regression" if not lines else f"{len(lines)} regression(s)"))
        for line in lines:
            print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
