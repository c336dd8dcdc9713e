"""Parsing the published traces and Gavel's throughput matrix (from text; the caller reads files).

Formats (see ../shared/data/traces/SOURCES.md):
- Gavel MSR traces: 7 tab-separated columns `job_type, command, num_steps_arg, needs_data_dir,
  total_steps, arrival_time_s, scale_factor`;
- Gavel physical-cluster traces: 10 columns `job_type, command, working_directory, num_steps_arg,
  needs_data_dir, total_steps, scale_factor, priority_weight, SLO, arrival_time`;
- Tiresias CSV `job_id,num_gpu,submit_time,iterations,model_name,duration,interval`;
- Sia CSV `name,time,application,num_replicas,batch_size`.

Tiresias and Sia jobs are not Gavel job types: each model or application is mapped to the Gavel
job type of the nearest model family (`TIRESIAS_PROXY`, `SIA_PROXY`) for its relative speed on each
accelerator. A Tiresias job's steps are chosen so that it runs its recorded `duration` on a V100; a
Sia trace records no duration, so a Sia job gets `SIA_V100_HOURS` of its application on a V100
(an assumption, stated in the simulator's output).
"""

from __future__ import annotations

import ast
import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

Matrix = dict[str, dict[tuple[str, int], float]]


class TraceError(ValueError):
    """A trace or matrix that does not parse; the message is `source:line: reason`."""


@dataclass(frozen=True)
class TraceJob:
    """One job of a trace: its type and size, its work in steps, and when it arrives (seconds)."""

    id: str
    job_type: str
    scale_factor: int
    total_steps: float
    arrival_s: float
    tenant: str = "default"
    priority: int = 0


TIRESIAS_PROXY = {
    "vgg": "ResNet-50 (batch size 64)", "resnet": "ResNet-50 (batch size 64)",
    "inception": "ResNet-50 (batch size 64)", "alexnet": "ResNet-18 (batch size 128)",
    "googlenet": "ResNet-18 (batch size 128)", "bert": "Transformer (batch size 64)",
    "transformer": "Transformer (batch size 64)", "lstm": "LM (batch size 20)", "deepspeech": "LM (batch size 20)",
}
SIA_PROXY = {
    "cifar10": "ResNet-18 (batch size 128)", "imagenet": "ResNet-50 (batch size 64)",
    "deepspeech2": "LM (batch size 20)", "bert": "Transformer (batch size 64)",
    "yolov3": "ResNet-50 (batch size 64)", "ncf": "Recommendation (batch size 2048)",
}
SIA_V100_HOURS = {"cifar10": 0.5, "imagenet": 8.0, "deepspeech2": 4.0, "bert": 2.0, "yolov3": 6.0, "ncf": 0.3}


def parse_throughputs(data: Mapping, source: str = "throughputs") -> Matrix:
    """Gavel's `{accelerator: {"(job_type, scale)": {"null": rate, ...}}}` as
    `{accelerator: {(job_type, scale): iterations/s of the whole job running alone}}`."""
    if not isinstance(data, Mapping) or not data:
        raise TraceError(f"{source}: expected a mapping of accelerator -> job throughputs")
    matrix: Matrix = {}
    for accelerator, jobs in data.items():
        if not isinstance(jobs, Mapping):
            raise TraceError(f"{source}: {accelerator}: expected a mapping of job keys")
        table = {}
        for key, entry in jobs.items():
            try:
                job_type, scale = ast.literal_eval(key)
                rate = float(entry["null"] if isinstance(entry, Mapping) else entry)
            except (ValueError, SyntaxError, TypeError, KeyError) as exc:
                raise TraceError(f"{source}: {accelerator}: key {key!r}: {exc}") from None
            table[(str(job_type), int(scale))] = rate
        matrix[str(accelerator)] = table
    return matrix


def _number(value: str, source: str, line: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise TraceError(f"{source}:{line}: {column} {value!r} is not a number") from None


def parse_gavel_trace(text: str, source: str = "trace", tenant: str | None = None) -> list[TraceJob]:
    """Gavel's MSR (7 columns) or physical-cluster (10 columns) tab-separated trace."""
    jobs = list(iter_gavel_trace(text.splitlines(), source, tenant))
    if not jobs:
        raise TraceError(f"{source}: no jobs")
    return jobs


def iter_gavel_trace(lines: Iterable[str], source: str = "trace", tenant: str | None = None) -> Iterator[TraceJob]:
    """`parse_gavel_trace` one line at a time (an open file, say), for a trace too large to hold."""
    count = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.rstrip("\r\n").split("\t")
        if len(cols) == 7:
            job_type, steps, arrival, scale, priority = cols[0], cols[4], cols[5], cols[6], "1"
        elif len(cols) == 10:
            job_type, steps, scale, priority, arrival = cols[0], cols[5], cols[6], cols[7], cols[9]
        else:
            raise TraceError(f"{source}:{line_no}: expected 7 (MSR) or 10 (physical cluster) tab-separated "
                             f"columns, found {len(cols)}")
        scale_factor = _number(scale, source, line_no, "scale_factor")
        if scale_factor < 1 or not scale_factor.is_integer():
            raise TraceError(f"{source}:{line_no}: scale_factor {scale!r} must be a whole number >= 1")
        total_steps = _number(steps, source, line_no, "total_steps")
        arrival_s = _number(arrival, source, line_no, "arrival_time")
        if total_steps <= 0 or arrival_s < 0:
            raise TraceError(f"{source}:{line_no}: total_steps must be > 0 and arrival_time >= 0")
        yield TraceJob(
            id=f"{tenant or 'job'}-{count}",
            job_type=job_type.strip(),
            scale_factor=int(scale_factor),
            total_steps=total_steps,
            arrival_s=arrival_s,
            tenant=tenant or "default",
            priority=int(_number(priority, source, line_no, "priority_weight")) - 1,
        )
        count += 1


def _rows(text: str, source: str, required: list[str]) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"{source}:1: missing column(s) {', '.join(missing)}")
    return [(i, row) for i, row in enumerate(reader, start=2)]


def _proxy(name: str, proxies: Mapping[str, str], source: str, line: int) -> str:
    lowered = name.lower()
    for prefix, job_type in proxies.items():
        if lowered.startswith(prefix):
            return job_type
    raise TraceError(f"{source}:{line}: no Gavel job type is known for model {name!r}; "
                     f"known families: {', '.join(proxies)}")


def parse_tiresias_trace(text: str, matrix: Matrix, source: str = "tiresias") -> list[TraceJob]:
    """Tiresias's CSV; steps set so each job runs its recorded duration on a V100."""
    jobs = []
    for line, row in _rows(text, source, ["job_id", "num_gpu", "submit_time", "model_name", "duration"]):
        gpus = int(_number(row["num_gpu"], source, line, "num_gpu"))
        job_type = _proxy(row["model_name"], TIRESIAS_PROXY, source, line)
        v100_rate = _rate_at_most(matrix, "v100", job_type, gpus)
        jobs.append(TraceJob(
            id=f"tiresias-{row['job_id']}", job_type=job_type, scale_factor=gpus,
            total_steps=_number(row["duration"], source, line, "duration") * v100_rate,
            arrival_s=_number(row["submit_time"], source, line, "submit_time"),
        ))
    return jobs


def parse_sia_trace(text: str, matrix: Matrix, source: str = "sia") -> list[TraceJob]:
    """Sia's CSV; each job gets `SIA_V100_HOURS` of its application on a V100 (an assumption)."""
    jobs = []
    for line, row in _rows(text, source, ["name", "time", "application", "num_replicas"]):
        app = row["application"].strip()
        if app not in SIA_V100_HOURS:
            raise TraceError(f"{source}:{line}: unknown application {app!r}; known: {', '.join(SIA_V100_HOURS)}")
        gpus = int(_number(row["num_replicas"], source, line, "num_replicas"))
        job_type = SIA_PROXY[app]
        jobs.append(TraceJob(
            id=row["name"], job_type=job_type, scale_factor=gpus,
            total_steps=SIA_V100_HOURS[app] * 3600 * _rate_at_most(matrix, "v100", job_type, gpus),
            arrival_s=_number(row["time"], source, line, "time"),
        ))
    return jobs


def _rate_at_most(matrix: Matrix, accelerator: str, job_type: str, scale: int) -> float:
    scales = [s for (t, s) in matrix.get(accelerator, {}) if t == job_type and s <= scale]
    if not scales:
        raise TraceError(f"throughputs: no {accelerator} entry for job type {job_type!r}")
    return matrix[accelerator][(job_type, max(scales))]


def check_throughputs(
    jobs: list[TraceJob], matrix: Matrix, accelerators: list[str], clamp: bool
) -> tuple[list[TraceJob], list[TraceJob]]:
    """Check every job's (job_type, scale_factor) is in the matrix for every accelerator.

    Returns (jobs to simulate, jobs clamped). Without `clamp`, a missing entry raises TraceError
    naming the job types, scale factors and the accelerators that lack them; with it, each such
    job runs at the largest scale factor the matrix has for its type on every accelerator (same
    steps), or, where no scale factor is on all of them, only on the accelerators that list its
    own (or else its largest) scale factor. A job type absent from the matrix on every
    accelerator always raises.
    """
    for accelerator in accelerators:
        if accelerator not in matrix:
            raise TraceError(f"throughputs: no accelerator {accelerator!r}; the matrix has {', '.join(sorted(matrix))}")
    out, clamped, missing = [], [], []
    for job in jobs:
        key = (job.job_type, job.scale_factor)
        if all(key in matrix[a] for a in accelerators):
            out.append(job)
            continue
        anywhere = {s for a in accelerators for (t, s) in matrix[a] if t == job.job_type}
        if not anywhere:
            raise TraceError(f"throughputs: job type {job.job_type!r} (job {job.id}) is missing from the matrix "
                             f"for every accelerator ({', '.join(accelerators)})")
        if not clamp:
            missing.append((job, [a for a in accelerators if key not in matrix[a]]))
            continue
        common = [s for s in anywhere if all((job.job_type, s) in matrix[a] for a in accelerators)]
        if common:
            fixed = replace(job, scale_factor=max(common))
        elif any(key in matrix[a] for a in accelerators):
            fixed = job  # runs only on the accelerators that list it (a zero rate elsewhere)
        else:
            fixed = replace(job, scale_factor=max(anywhere))
        out.append(fixed)
        clamped.append(job)
    if missing:
        lacking: dict[tuple[str, int], set[str]] = {}
        for job, accs in missing:
            lacking.setdefault((job.job_type, job.scale_factor), set()).update(accs)
        keys = sorted(lacking)
        raise TraceError(
            f"throughputs: {len(missing)} job(s) ask for (job_type, scale_factor) pairs the matrix lacks: "
            + "; ".join(f"{t!r} x{s} (no {', '.join(sorted(lacking[(t, s)]))})" for t, s in keys[:8])
            + (" ..." if len(keys) > 8 else "")
            + f" (first: {missing[0][0].id}); rerun with --on-missing-throughput clamp to run them at the largest "
            "scale factor the matrix has for their type, or only where their rate is known"
        )
    return out, clamped


def iter_checked(jobs: Iterable[TraceJob], matrix: Matrix, accelerators: list[str], clamp: bool) -> Iterator[TraceJob]:
    """`check_throughputs` one job at a time, for a streamed trace: yields each job (clamped as
    there when `clamp`), and without `clamp` raises TraceError at the first job whose
    (job_type, scale_factor) some accelerator lacks, naming both and the flag."""
    for job in jobs:
        kept, _ = check_throughputs([job], matrix, accelerators, clamp)
        yield kept[0]
