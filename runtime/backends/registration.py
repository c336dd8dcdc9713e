"""Registering a Ray cluster: the entry and its token checked, then the cluster itself, before
anything is stored.

1. Its dashboard answers with its node list, with the token given (else: refused, naming
   `address` or `token`).
2. Its nodes see the server's runs directory at `storage` (the same path when empty), readable and
   writable: a check job is submitted through Ray's job-submission REST API, with the same
   interpreter the attempts' launches use. The server writes a random challenge under its runs
   directory; the job, on the cluster, reads it at the storage path and writes it back beside it;
   the server reads the answer. A path its nodes cannot see, one holding another directory, or
   one they cannot write is refused naming `--storage` and the fix, instead of every attempt
   placed there failing later. The job runs where Ray runs job drivers (the head node), as the
   attempts' drivers do.

Both run under a hard deadline (REGISTRATION_TIMEOUT_S in all): a cluster that does not answer, or
trickles its answer, is refused, never waited on.

The check job's side is `main` (`python -m runtime.backends.registration <dir>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import shutil
import socket
import sys
from pathlib import Path

import httpx

from cluster.federation import (
    PROBE_TIMEOUT_S,
    REGISTRATION_TIMEOUT_S,
    ClusterEntry,
    ProbeFailed,
    ProbeRefused,
    check_entry,
    check_token,
    dashboard_request,
    ending_with_exception,
    failure_reason,
    one_line,
    probe_nodes,
    run_blocking,
)
from runtime.store.clusters import ClusterStore

CHECK_DIR = ".cluster-checks"
CHALLENGE, ANSWER = "challenge", "answer"
REPORT_PREFIX = "storage-check: "
POLL_S = 0.5


def register_cluster(registry: ClusterStore, fields: dict, actor: str, runs_dir: Path,
                     reserved: set[str] = frozenset(), timeout_s: float = REGISTRATION_TIMEOUT_S) -> ClusterEntry:
    """Check the entry, its token and the cluster (see the module), then store the entry and its
    token; ValueError naming the field and the fix otherwise, with nothing stored. `reserved`:
    names that are not free (the server's own cluster)."""
    storage = fields.get("storage")
    if storage and not Path(storage).is_absolute():
        raise ValueError(f"storage: {storage!r} must be the absolute path at which the cluster's nodes see "
                         f"this server's runs directory ({runs_dir}); object-store URIs are not supported")
    entry = check_entry(fields["name"], fields["address"], fields.get("site"), fields.get("tier", "center"),
                        storage, fields.get("links"))
    token = check_token(fields["token"], "token") if fields.get("token") is not None else None
    if entry.name in reserved:
        raise ValueError(f"name: {entry.name!r} is the server's own cluster; choose another name")
    if registry.get(entry.name) is not None:
        raise ValueError(f"name: a cluster named {entry.name!r} is already registered; remove it first "
                         f"(suanli clusters remove {entry.name})")
    run_blocking(check_cluster(entry, token, Path(runs_dir), timeout_s))
    return registry.add(entry, token, actor)


async def check_cluster(entry: ClusterEntry, token: str | None, runs_dir: Path,
                        timeout_s: float = REGISTRATION_TIMEOUT_S) -> None:
    """Steps 1 and 2 of the module; ValueError naming `address`, `token` or `storage` otherwise."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S * 2):
            await probe_nodes(entry, PROBE_TIMEOUT_S, token)
    except ProbeRefused as exc:
        if exc.status in (401, 403):
            said = "refused the token given" if token else "requires a token"
            raise ValueError(f"token: the cluster at {entry.address} {said} (HTTP {exc.status}); pass --token-file "
                             "with a file holding its Ray auth token (`ray get-auth-token` on its head prints "
                             "it)") from None
        raise ValueError(f"address: {entry.address} answered HTTP {exc.status} for Ray's node list; is it the "
                         "cluster's dashboard (http://HEAD:8265, with ray[default])?") from None
    except TimeoutError:
        raise ValueError(f"address: no answer from {entry.address} within {PROBE_TIMEOUT_S * 2:g} s; check the "
                         "address and that the head runs its dashboard") from None
    except Exception as exc:  # noqa: BLE001 - every failure to answer refuses the registration
        raise ValueError(f"address: {entry.address} does not answer as Ray's dashboard ({failure_reason(exc)}); "
                         "check the address and that the head runs its dashboard") from None
    await check_storage(entry, token, runs_dir, timeout_s)


async def check_storage(entry: ClusterEntry, token: str | None, runs_dir: Path,
                        timeout_s: float = REGISTRATION_TIMEOUT_S) -> None:
    """Step 2 of the module; ValueError naming `storage` (--storage) and the fix otherwise."""
    check_id = f"suanli-check-{entry.name}-{secrets.token_hex(4)}"
    here = runs_dir / CHECK_DIR / check_id
    there = Path(entry.storage or runs_dir) / CHECK_DIR / check_id
    nonce = secrets.token_hex(16)
    here.mkdir(parents=True)
    try:
        (here / CHALLENGE).write_text(nonce)
        try:
            async with asyncio.timeout(timeout_s):
                ended = await _run_job(entry, token, check_id, there, timeout_s)
        except TimeoutError:
            await _stop_quietly(entry, token, check_id)
            raise ValueError(f"storage: the check job {check_id} did not end on cluster {entry.name} within "
                             f"{timeout_s:g} s (is the cluster busy?); register it again when it is idle") from None
        answer = here / ANSWER
        if answer.is_file() and answer.read_text() == nonce:
            return
        report = await _report(entry, token, check_id)
    except (httpx.HTTPError, ProbeFailed, TimeoutError) as exc:
        raise ValueError(f"address: the check job could not be run on {entry.address} ({failure_reason(exc)}); "
                         "register it again when the cluster answers") from None
    finally:
        shutil.rmtree(here, ignore_errors=True)
        with contextlib.suppress(OSError):
            here.parent.rmdir()  # when no other check runs
    where = f"--storage {entry.storage}" if entry.storage else f"no --storage (so {runs_dir})"
    fix = (f"pass --storage with the path at which its nodes see this server's runs directory {runs_dir} "
           "(mount the shared filesystem there first), writable by the user Ray runs as")
    seen = report or f"the check job ended {ended['status']}: {ending_with_exception(ended.get('message') or '')}"
    raise ValueError(f"storage: the nodes of cluster {entry.name} cannot use {where}: {one_line(seen, 300)}; {fix}")


async def _run_job(entry: ClusterEntry, token: str | None, check_id: str, there: Path, timeout_s: float) -> dict:
    """Submit the check job and wait until it ends: Ray's record of it."""
    entrypoint = f"{shlex.quote(sys.executable)} -m runtime.backends.registration {shlex.quote(str(there))}"
    status, _ = await dashboard_request("POST", entry.address, "/api/jobs/", token, timeout_s,
                                        body={"entrypoint": entrypoint, "submission_id": check_id,
                                              "metadata": {"suanli": "registration check"}})
    if status >= 400:
        raise ProbeRefused(status)
    while True:
        await asyncio.sleep(POLL_S)
        status, job = await dashboard_request("GET", entry.address, f"/api/jobs/{check_id}", token, timeout_s)
        if status >= 400 or not isinstance(job, dict):
            raise ProbeRefused(status)
        if job.get("status") in ("SUCCEEDED", "FAILED", "STOPPED"):
            return job


async def _report(entry: ClusterEntry, token: str | None, check_id: str) -> str:
    """The check job's own line saying what it found (empty when it printed none)."""
    status, answer = await dashboard_request("GET", entry.address, f"/api/jobs/{check_id}/logs", token,
                                             PROBE_TIMEOUT_S * 5)
    logs = answer.get("logs", "") if isinstance(answer, dict) else ""
    found = [line.removeprefix(REPORT_PREFIX) for line in logs.splitlines() if line.startswith(REPORT_PREFIX)]
    return found[-1] if found else ""


async def _stop_quietly(entry: ClusterEntry, token: str | None, check_id: str) -> None:
    with contextlib.suppress(TimeoutError, httpx.HTTPError, ProbeFailed):
        await dashboard_request("POST", entry.address, f"/api/jobs/{check_id}/stop", token, PROBE_TIMEOUT_S)
        # otherwise it ends by itself: it only reads and writes one small file


def report(line: str) -> None:
    """One REPORT_PREFIX line on the check job's stdout, which is how the server reads its report."""
    print(f"{REPORT_PREFIX}{line}", flush=True)  # noqa: T201 - the check job's stdout is its report


def main(directory: str) -> int:
    """The check job: read the challenge at `directory` and write it back as the answer. Prints
    one REPORT_PREFIX line saying what is wrong otherwise."""
    where = Path(directory)
    if not where.parent.parent.is_dir():
        report(f"{where.parent.parent} does not exist on node {socket.gethostname()}")
        return 3
    try:
        nonce = (where / CHALLENGE).read_text()
    except FileNotFoundError:
        report(f"{where.parent.parent} exists there but is another directory (no "
               f"{CHECK_DIR}/{where.name}/{CHALLENGE} written by the server is in it)")
        return 3
    except OSError as exc:
        report(f"{where / CHALLENGE} cannot be read there ({exc.strerror})")
        return 3
    try:
        scratch = where / f"{ANSWER}.tmp"
        scratch.write_text(nonce)
        scratch.replace(where / ANSWER)
    except OSError as exc:
        report(f"{where} is not writable there ({exc.strerror})")
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
