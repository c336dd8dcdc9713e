"""`suanli audit verify | tail | export`: read and check the audit log (files under the state
directory's `audit/`; verification needs no server)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer

from runtime.cli.common import console, fail

audit_app = typer.Typer(no_args_is_help=True, help="Read and verify the signed, hash-chained audit log.")


def _directory(state_dir: Path | None) -> Path:
    import cluster

    directory = (state_dir or cluster.load_config().state_path).expanduser() / "audit"
    if not directory.exists():
        raise fail(f"--state-dir: {directory} does not exist (no audit log there)")
    return directory


@audit_app.command("verify")
def verify(
    state_dir: Path | None = typer.Option(None, "--state-dir"),
    since: str | None = typer.Option(None, "--from", help="Report on records from this date (YYYY-MM-DD) on; the "
                                     "chain is always checked from its start."),
    public_key: Path | None = typer.Option(None, "--public-key", help="The log's public key (default: the one "
                                           "beside it; give a copy kept elsewhere to rule out a swapped key)."),
) -> None:
    """Check the chain and the signed checkpoints; exit 1 naming the first bad record."""
    from runtime.audit.verify import verify_log

    when = None
    if since:
        try:
            when = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        except ValueError:
            raise fail(f"--from: {since!r} is not a date such as 2026-11-22") from None
    verdict = verify_log(_directory(state_dir), public_key, when)
    if not verdict.ok:
        raise fail(verdict.line(), code=1)
    console.print(verdict.line(), highlight=False)


@audit_app.command("tail")
def tail(state_dir: Path | None = typer.Option(None, "--state-dir"),
         count: int = typer.Option(20, "-n", min=1, max=100_000)) -> None:
    """Print the newest records, one JSON object per line."""
    from runtime.audit.log import AuditLog

    for record in AuditLog.read_tail(_directory(state_dir), count):
        typer.echo(json.dumps(record, sort_keys=True))


@audit_app.command("export")
def export(out: Path = typer.Option(..., "--out", help="A .tar.gz with every segment, the checkpoints and the "
                                    "public key, for archiving or an auditor's own verification."),
           state_dir: Path | None = typer.Option(None, "--state-dir")) -> None:
    """Archive the log with its checkpoints and public key (never the private key)."""
    import tarfile

    from runtime.audit.log import CHECKPOINTS, PUBLIC_KEY_FILE

    directory = _directory(state_dir)
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(directory.glob("audit-*.jsonl")) + [directory / CHECKPOINTS, directory / PUBLIC_KEY_FILE]:
            if path.exists():
                archive.add(path, arcname=f"audit/{path.name}")
    console.print(f"wrote {out}")
