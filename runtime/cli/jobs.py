"""`suanli submit | jobs | logs | cancel`: the job lifecycle from the command line.

`submit --wait` runs the controller in this process until the job finishes; without `--wait` the
job is stored QUEUED for a running `suanli controller` to pick up.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from cluster.errors import ConfigError
from runtime.cli.common import console, fail, print_json


def _store():
    import cluster
    from runtime.store import JobStore

    return JobStore(cluster.load_config().state_path)


def submit(
    job_file: Path = typer.Argument(..., help="Job spec YAML (the fields of runtime.TrainingJob)."),
    wait: bool = typer.Option(False, "--wait", help="Run the controller here until the job finishes."),
    timeout: float = typer.Option(3600.0, "--timeout"),
    policy: str = typer.Option("hetero", "--policy"),
) -> None:
    """Validate and submit a training job."""
    from runtime.client import Client
    from runtime.datasets import DatasetError, inspect_table
    from runtime.specs import load_job_yaml

    try:
        spec = load_job_yaml(job_file)
        if spec.dataset:  # bad data fails here, before Ray starts or anything is stored
            inspect_table(spec.dataset, spec.label, spec.categorical)
        with Client(policy=policy, run_controller=wait) as client:
            job = client.submit(spec)
            console.print(f"submitted {job.id}: {job.status().value}")
            if wait:
                with console.status(f"{job.id} running..."):
                    state = job.wait(timeout=timeout)
                console.print(job.logs())
                if state.value != "SUCCEEDED":
                    raise typer.Exit(1)
                metrics = job.result().metrics
                console.print({k: metrics[k] for k in ("auc", "ks", "f1", "log_loss", "jrt0221_auc_pass") if k in metrics})
    except (ConfigError, DatasetError, ValueError) as exc:
        raise fail(str(exc)) from None


def jobs(
    tenant: str | None = typer.Option(None, "--tenant"),
    state: str | None = typer.Option(None, "--state"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs in the store."""
    from runtime.specs import JobState

    try:
        chosen = JobState(state.upper()) if state else None
    except ValueError:
        raise fail(f"--state: {state!r} is not one of {', '.join(s.value for s in JobState)}") from None
    records = _store().list(tenant=tenant, state=chosen)
    if json_out:
        print_json([{"id": r.id, "tenant": r.tenant, "user": r.user, "state": r.state.value, "attempts": r.attempts,
                     "created": r.created, "error": r.error} for r in records])
        return
    table = Table(title="jobs")
    for col in ("id", "tenant", "user", "state", "attempts", "submitted"):
        table.add_column(col)
    for r in records:
        table.add_row(r.id, r.tenant, r.user, r.state.value, str(r.attempts),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created)))
    console.print(table)


def logs(job_id: str = typer.Argument(...)) -> None:
    """Print a job's log (state changes, waiting reasons, tracebacks)."""
    store = _store()
    try:
        store.get(job_id)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    path = store.log_path(job_id)
    typer.echo(path.read_text() if path.exists() else "")


def cancel(job_id: str = typer.Argument(...), user: str = typer.Option("cli", "--user")) -> None:
    """Ask the controller to cancel a job."""
    try:
        _store().request_cancel(job_id, user)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    console.print(f"cancellation of {job_id} requested")
