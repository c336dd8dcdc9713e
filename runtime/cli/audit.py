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
    public_key: Path | None = typer.Option(None, "--public-key", envvar="SUANLI_AUDIT_VERIFY_KEY",
                                           help="The log's public key, a copy kept outside the log's directory "
                                           "(PEM; audit-key.pub.pem as the server first wrote it)."),
    trust_key_beside_log: bool = typer.Option(False, "--trust-key-beside-log",
                                              help="Verify with the public key inside the log's directory: whoever "
                                              "can rewrite the log can replace it too."),
    store_url: str | None = typer.Option(None, "--store-url", envvar="SUANLI_STORE_URL",
                                         help="The server's store, which keeps the newest signed head (default: the "
                                         "SQLite store in the state directory)."),
    no_store: bool = typer.Option(False, "--no-store", help="Check without the store's head (an exported copy): a "
                                  "deleted tail is then caught only by a witness file."),
    witness: Path | None = typer.Option(None, "--witness", envvar="SUANLI_AUDIT_WITNESS",
                                        help="An append-only witness file the server also writes heads to."),
) -> None:
    """Check the chain, the signed checkpoints and that the log reaches the newest head its
    witnesses keep; exit 1 naming the first bad or missing record."""
    from runtime.audit.log import PUBLIC_KEY_FILE
    from runtime.audit.verify import verify_log
    from runtime.audit.witness import FileWitness

    when = None
    if since:
        try:
            when = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        except ValueError:
            raise fail(f"--from: {since!r} is not a date such as 2026-11-22") from None
    directory = _directory(state_dir)
    key = _pinned_key(directory, public_key, trust_key_beside_log, PUBLIC_KEY_FILE)
    witnesses = [] if no_store else [_head_store(directory.parent, store_url)]
    if witness is not None:
        witnesses.append(FileWitness(witness))
    try:
        verdict = verify_log(directory, key, when, witnesses)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not verdict.ok:
        raise fail(verdict.line(), code=1)
    console.print(verdict.line(), highlight=False)


def _pinned_key(directory: Path, public_key: Path | None, trust_beside: bool, beside_name: str) -> Path:
    """The public key to verify with: one kept outside `directory`, or (only when the operator
    says so) the one beside the log."""
    if public_key is None:
        if not trust_beside:
            raise fail(f"--public-key: give the log's public key from outside {directory} (or set "
                       f"SUANLI_AUDIT_VERIFY_KEY): copy {directory / beside_name} somewhere the log's writer cannot "
                       "change once, and verify with that copy; --trust-key-beside-log uses the one in the directory, "
                       "which proves nothing against whoever can rewrite it")
        return directory / beside_name
    if public_key.expanduser().resolve().is_relative_to(directory.resolve()) and not trust_beside:
        raise fail(f"--public-key: {public_key} is inside the log's directory {directory}, where whoever rewrites the "
                   "log can replace it; give a copy kept elsewhere (or --trust-key-beside-log)")
    return public_key.expanduser()


def _head_store(state_dir: Path, store_url: str | None):
    """The store's audit heads: `store_url`, else the SQLite store in `state_dir` (never created here)."""
    from runtime.store import StoreError
    from runtime.store.audit_heads import AuditHeadStore
    from runtime.store.database import Database, sqlite_url

    if store_url is None and not (state_dir / "jobs.db").exists():
        raise fail(f"--store-url: no store at {state_dir / 'jobs.db'}; give the server's --store-url, or --no-store to "
                   "check an exported copy without the store's head")
    try:
        return AuditHeadStore(Database(store_url or sqlite_url(state_dir)))
    except StoreError as exc:
        raise fail(str(exc)) from None


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
