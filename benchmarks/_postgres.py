"""A throwaway PostgreSQL 15 server on loopback, for the tests' store fixture and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def throwaway_postgres(fsync: bool = True) -> Iterator[str]:
    """Start PostgreSQL 15 in a temp dir on a free loopback port (as the `postgres` OS user when
    root: it refuses to run as root), yield its URL, then stop it and delete its files."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 is needed at {PG_BIN} (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="suanli-pg-"))  # not under a 0700 tree: postgres must enter it
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "suanli"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1" + ("" if fsync else " -c fsync=off")
    subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
                    options, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://suanli@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
