"""The one owner of the runs directory: `runs/<job>/provenance.json` and
`runs/<job>/attempt-N/` (progress, worker records, the evaluation, the stop and fence tokens, the
launch record, Ray Train's checkpoints). Every file name is spelled here and nowhere else.

A user's training code runs with write access to its attempt's directory, so everything in it is
hostile until checked: each file is reached from the runs root one directory at a time without
following a symbolic link (`openat` with `O_NOFOLLOW`), must be a regular file (not a FIFO or a
device), is read up to a size cap, and is parsed with its required fields checked. A problem is a
`RunFileError` naming the file (relative to the runs root), what is wrong and the fix; the
controller fails that one job with it and goes on with the others.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

PROGRESS_FILE = "progress.jsonl"  # one line per epoch, rank 0
WORKERS_FILE = "workers.jsonl"  # one line per worker: where it ran, on which device
MEMORY_FILE = "memory.jsonl"  # one line per worker: its peak resident memory
EVALUATION_FILE = "evaluation.json"  # rank 0's metrics of the final model on the test split
WORKER_GROUP_FILE = "worker_group.json"  # Ray Train's worker group: ranks, nodes, placement group
STOP_FILE = "STOP"  # the stop token: built-in loops end at the next epoch boundary
FENCED_FILE = "FENCED"  # the attempt was fenced off (its cluster was lost): it reports nothing
LAUNCH_FILE = "launch.json"  # what a remote cluster's entrypoint runs
STATUS_FILE = "status.json"  # a remote attempt's phase, written by its entrypoint
PROVENANCE_FILE = "provenance.json"  # per job: the training record (JR/T 0221 6.4)
PREPARED_DIR = "prepared"  # the job's split plan and preprocessing, shared with its workers
CHECKPOINT_META = "meta.json"  # in each checkpoint directory: its epoch and sha256
CHECKPOINT_PREFIX = "checkpoint_"

MAX_JSON_BYTES = 1 << 20  # one JSON record (evaluation, status, launch, a checkpoint's meta)
MAX_LINES_BYTES = 16 << 20  # a .jsonl file: about 100,000 epochs' lines
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RunFileError(ValueError):
    """A file of a run directory that cannot be trusted or parsed; the message names it."""


def _component(name: str, what: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise RunFileError(f"{what}: {name!r} is not a plain file or directory name")
    return name


class RunsDir:
    """The runs root (trusted: the server's own configuration names it)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def job(self, job_id: str) -> JobDir:
        return JobDir(self, _component(job_id, "job id"))

    def attempt(self, job_id: str, number: int) -> AttemptDir:
        return self.job(job_id).attempt(number)

    # ---- safe file access, relative to the root ---------------------------------------------
    def _open(self, parts: tuple[str, ...], flags: int, create_dirs: bool = False, mode: int = 0o644) -> int:
        """A file descriptor of root/parts..., each directory entered without following a link."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in parts[:-1]:
                try:
                    next_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    if not create_dirs:
                        raise
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    next_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RunFileError(f"{'/'.join(parts)}: a symbolic link (or not a directory) where suanli keeps "
                                   f"its own files; remove it") from None
            raise
        finally:
            os.close(fd)

    def read_bytes(self, parts: tuple[str, ...], limit: int) -> bytes | None:
        """The file's bytes (None when it does not exist); RunFileError when it is a link, not a
        regular file, or larger than `limit`."""
        where = "/".join(parts)
        try:
            fd = self._open(parts, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise RunFileError(f"{where}: not a regular file; remove it")
            if info.st_size > limit:
                raise RunFileError(f"{where}: {info.st_size:,} bytes, over the {limit:,}-byte limit for this file")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise RunFileError(f"{where}: over the {limit:,}-byte limit for this file")
        return data

    def write_bytes(self, parts: tuple[str, ...], data: bytes, append: bool = False) -> None:
        """Write (or append to) the file, creating its directories; never through a link."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = self._open(parts, flags, create_dirs=True)
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RunFileError(f"{'/'.join(parts)}: not a regular file; remove it")
            f.write(data)

    def replace_bytes(self, parts: tuple[str, ...], data: bytes) -> None:
        """Write the file atomically (a temporary beside it, then a rename)."""
        temporary = (*parts[:-1], f".{parts[-1]}.tmp")
        self.write_bytes(temporary, data)
        directory = self._open((*parts[:-1], "."), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.replace(temporary[-1], parts[-1], src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            os.close(directory)

    def exists(self, parts: tuple[str, ...]) -> bool:
        """Whether the entry exists (a link counts: it is never followed)."""
        try:
            fd = self._open((*parts[:-1], "."), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        try:
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)

    def entries(self, parts: tuple[str, ...]) -> list[tuple[str, str]]:
        """(name, "dir" | "link" | "file") for each entry of the directory (empty when absent);
        "dir" is a real directory, never a link to one."""
        try:
            fd = self._open((*parts, "."), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return []
        try:
            return sorted((e.name, "link" if e.is_symlink() else "dir" if e.is_dir(follow_symlinks=False) else "file")
                          for e in os.scandir(fd))
        finally:
            os.close(fd)

    def read_json(self, parts: tuple[str, ...], required: tuple[str, ...] = ()) -> dict | None:
        """A JSON object (None when absent) with `required` keys; RunFileError naming what is wrong."""
        data = self.read_bytes(parts, MAX_JSON_BYTES)
        if data is None:
            return None
        return parse_object(data, "/".join(parts), required)

    def read_lines(self, parts: tuple[str, ...], required: tuple[str, ...] = ()) -> list[dict]:
        """The JSON objects of a .jsonl file, in order (empty when absent), each with `required`."""
        data = self.read_bytes(parts, MAX_LINES_BYTES)
        where = "/".join(parts)
        return [parse_object(line, f"{where}: line {i}", required)
                for i, line in enumerate((data or b"").splitlines(), start=1) if line.strip()]


def parse_object(data: bytes, where: str, required: tuple[str, ...] = ()) -> dict:
    """`data` as a JSON object holding `required`; RunFileError naming `where` otherwise."""
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunFileError(f"{where}: not JSON; the file was not written by suanli") from None
    if not isinstance(value, dict):
        raise RunFileError(f"{where}: not a JSON object; the file was not written by suanli")
    missing = [k for k in required if k not in value]
    if missing:
        raise RunFileError(f"{where}: missing field {', '.join(repr(k) for k in missing)}; "
                           f"the file was not written by suanli (or was changed)")
    return value


def _epoch(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RunFileError(f"{where}: 'epoch' must be a whole number >= 0, not {str(value)[:40]!r}")
    return value


class JobDir:
    """`runs/<job>/`: its attempts and its provenance record."""

    def __init__(self, runs: RunsDir, job_id: str):
        self.runs, self.job_id = runs, job_id
        self.path = runs.root / job_id

    def attempt(self, number: int) -> AttemptDir:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise RunFileError(f"attempt: {number!r} must be a whole number >= 1")
        return AttemptDir(self.runs, self.job_id, number)

    def attempts(self) -> list[AttemptDir]:
        """The job's attempt directories in order (links and stray names ignored)."""
        numbers = [int(name.split("-", 1)[1]) for name, kind in self.runs.entries((self.job_id,))
                   if kind == "dir" and re.fullmatch(r"attempt-[1-9][0-9]{0,5}", name)]
        return [self.attempt(n) for n in sorted(numbers)]

    def provenance(self) -> dict | None:
        """The job's provenance record (None before the job finished; at most 16 MiB)."""
        data = self.runs.read_bytes((self.job_id, PROVENANCE_FILE), MAX_LINES_BYTES)
        return None if data is None else parse_object(data, f"{self.job_id}/{PROVENANCE_FILE}", ())

    def write_provenance(self, record: dict) -> Path:
        """Write provenance.json (atomically, never through a link); its path."""
        self.runs.replace_bytes((self.job_id, PROVENANCE_FILE), json.dumps(record, indent=2, default=str).encode())
        return self.path / PROVENANCE_FILE


class AttemptDir:
    """`runs/<job>/attempt-N/`: every file of one attempt, read and written safely."""

    def __init__(self, runs: RunsDir, job_id: str, number: int):
        self.runs, self.job_id, self.number = runs, job_id, number
        self.name = f"attempt-{number}"
        self.path = runs.root / job_id / self.name

    @classmethod
    def at(cls, path: str | Path) -> AttemptDir:
        """The attempt directory at `path` (`<runs>/<job>/attempt-N`), as a worker is given it."""
        path = Path(path)
        if not re.fullmatch(r"attempt-[1-9][0-9]{0,5}", path.name):
            raise RunFileError(f"run_dir: {path} does not end in attempt-N")
        return cls(RunsDir(path.parent.parent), _component(path.parent.name, "job id"), int(path.name.split("-")[1]))

    def _parts(self, *names: str) -> tuple[str, ...]:
        return (self.job_id, self.name, *names)

    def create(self) -> Path:
        """Make the directory (and the job's), never through a link; its path."""
        os.close(self.runs._open(self._parts("."), os.O_RDONLY | os.O_DIRECTORY, create_dirs=True))
        return self.path

    # ---- progress and records, written by the workers -----------------------------------------
    def progress(self) -> list[dict]:
        """Rank 0's per-epoch lines, each with a whole-number 'epoch' and its 'epoch_seconds'."""
        where = "/".join(self._parts(PROGRESS_FILE))
        lines = self.runs.read_lines(self._parts(PROGRESS_FILE), required=("epoch", "epoch_seconds"))
        for i, line in enumerate(lines, start=1):
            _epoch(line["epoch"], f"{where}: line {i}")
            seconds = line["epoch_seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 1e9:
                raise RunFileError(f"{where}: line {i}: 'epoch_seconds' must be a number of seconds >= 0")
        return lines

    def progress_size(self) -> int:
        """The progress file's size in bytes (0 when absent): cheap, to see whether it grew."""
        try:
            fd = self.runs._open(self._parts(PROGRESS_FILE), os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return 0
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def append_progress(self, record: dict) -> None:
        self.runs.write_bytes(self._parts(PROGRESS_FILE), (json.dumps(record) + "\n").encode(), append=True)

    def workers(self) -> list[dict]:
        """One line per worker that ran: rank, node id, device."""
        return self.runs.read_lines(self._parts(WORKERS_FILE), required=("rank", "node_id"))

    def append_worker(self, record: dict) -> None:
        self.runs.write_bytes(self._parts(WORKERS_FILE), (json.dumps(record) + "\n").encode(), append=True)

    def memory(self) -> list[dict]:
        """One line per worker: its rank and peak resident memory."""
        return self.runs.read_lines(self._parts(MEMORY_FILE), required=("rank", "peak_rss_mb"))

    def append_memory(self, record: dict) -> None:
        self.runs.write_bytes(self._parts(MEMORY_FILE), (json.dumps(record) + "\n").encode(), append=True)

    def evaluation(self) -> dict | None:
        return self.runs.read_json(self._parts(EVALUATION_FILE))

    def write_evaluation(self, metrics: dict) -> None:
        self.runs.replace_bytes(self._parts(EVALUATION_FILE), json.dumps(metrics, default=float).encode())

    def worker_group(self) -> dict | None:
        """What Ray Train's worker group recorder wrote (None before the workers started)."""
        return self.runs.read_json(self._parts(WORKER_GROUP_FILE), required=("workers",))

    def write_worker_group(self, group: dict) -> None:
        self.runs.replace_bytes(self._parts(WORKER_GROUP_FILE), json.dumps(group).encode())

    # ---- tokens ----------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        return self.runs.exists(self._parts(STOP_FILE))

    def request_stop(self) -> None:
        self.runs.write_bytes(self._parts(STOP_FILE), b"", append=True)

    def fenced(self) -> bool:
        return self.runs.exists(self._parts(FENCED_FILE))

    def mark_fenced(self) -> None:
        """The attempt's cluster was lost: it must stop and report nothing."""
        self.runs.write_bytes(self._parts(FENCED_FILE), b"", append=True)
        self.request_stop()

    # ---- a remote cluster's launch and status ---------------------------------------------------
    def write_launch(self, launch: dict) -> Path:
        self.runs.replace_bytes(self._parts(LAUNCH_FILE), json.dumps(launch).encode())
        return self.path / LAUNCH_FILE

    def status(self) -> dict | None:
        """A remote attempt's phase as its entrypoint wrote it (None before it did)."""
        try:
            return self.runs.read_json(self._parts(STATUS_FILE), required=("phase",))
        except RunFileError:
            return None  # half-written or tampered: the cluster's own record of the job decides

    def write_status(self, status: dict) -> None:
        self.runs.replace_bytes(self._parts(STATUS_FILE), json.dumps(status, default=str).encode())

    @property
    def prepared_dir(self) -> Path:
        return self.path / PREPARED_DIR

    # ---- checkpoints ---------------------------------------------------------------------
    def checkpoints(self, skip: Collection[str] = ()) -> Iterator[tuple[Path, dict]]:
        """(directory, meta) of each sealed checkpoint Ray Train persisted here, in name order;
        a checkpoint directory that is a link is refused; one without meta.json yet, and Ray Train's
        own files beside them (checkpoint_manager_snapshot.json), are skipped, and so are the
        directories named in `skip` (their paths as strings: already read) without reading them."""
        for name, kind in self.runs.entries(self._parts()):
            if not name.startswith(CHECKPOINT_PREFIX) or kind == "file" or str(self.path / name) in skip:
                continue
            if kind == "link":
                raise RunFileError(f"{'/'.join(self._parts(name))}: a checkpoint that is a link, not a directory; "
                                   f"remove it")
            meta = self.runs.read_json(self._parts(name, CHECKPOINT_META), required=("epoch", "sha256"))
            if meta is None:
                continue
            where = "/".join(self._parts(name, CHECKPOINT_META))
            _epoch(meta["epoch"], where)
            if not isinstance(meta["sha256"], str) or not _SHA256.match(meta["sha256"]):
                raise RunFileError(f"{where}: 'sha256' must be 64 lowercase hex digits")
            yield self.path / name, meta
