"""`suanli submit | jobs | logs | events | cancel`: thin clients of the server (SUANLI_SERVER, the
config file's `server`, else the local server, started on first use)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from cluster.errors import ConfigError
from runtime.cli.common import console, fail, print_json


def client_or_fail():
    """A Client of the configured server, or a one-line error exit naming what is wrong."""
    from runtime.client import Client, ServerUnavailable

    try:
        return Client()
    except (ServerUnavailable, ConfigError) as exc:
        raise fail(str(exc)) from None


def call(method: str, path: str, body: dict | None = None, text: bool = False):
    """One API call as the CLI makes it; a one-line error exit naming what is wrong."""
    try:
        with client_or_fail() as client:
            return client.request(method, path, body, text)
    except api_errors() as exc:
        raise fail(str(exc)) from None


def api_errors():
    from runtime.client import ApiError, ServerUnavailable

    return (ApiError, ServerUnavailable, ConfigError)


def _submit_and_wait(spec, wait: bool, timeout: float, report) -> None:
    """Submit `spec`; with `wait`, block until it finishes, then `report(job)` (exit 1 naming the
    cause unless it SUCCEEDED)."""
    with client_or_fail() as client:
        job = client.submit(spec)
        console.print(f"submitted {job.id}: {job.status().value}")
        if not wait:
            return
        with console.status(f"{job.id} running..."):
            state = job.wait(timeout=timeout)
        console.print(job.logs())
        if state.value != "SUCCEEDED":
            raise fail(f"job {job.id} is {state.value}: {job.info()['error'] or 'see its logs'}", code=1)
        report(job)


def submit(
    job_file: Path = typer.Argument(..., help="Job spec YAML (the fields of runtime.TrainingJob)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the job finishes and print its metrics."),
    timeout: float = typer.Option(3600.0, "--timeout"),
) -> None:
    """Validate a job file and submit it to the server."""
    from runtime.specs import load_job_yaml

    def report(job) -> None:
        metrics = job.result().metrics
        console.print({k: metrics[k] for k in ("auc", "ks", "f1", "log_loss", "jrt0221_auc_pass") if k in metrics})

    try:
        _submit_and_wait(load_job_yaml(job_file), wait, timeout, report)
    except (*api_errors(), ValueError) as exc:
        raise fail(str(exc)) from None


def features(
    spec_file: Path = typer.Argument(..., help="Feature job YAML (the fields of runtime.FeatureJob)."),
    wait: bool = typer.Option(False, "--wait", help="Wait until it finishes; print where it ran and why."),
    timeout: float = typer.Option(3600.0, "--timeout"),
) -> None:
    """Submit a sliding-window feature job (placed by data volume, site and device speed)."""
    from runtime.specs import load_features_yaml

    def report(job) -> None:
        result = job.result()
        console.print(f"wrote {result.rows:,} rows to {result.output} in {result.seconds} s on {result.device}",
                      highlight=False)

    try:
        _submit_and_wait(load_features_yaml(spec_file), wait, timeout, report)
    except (*api_errors(), ValueError) as exc:
        raise fail(str(exc)) from None


def jobs(
    tenant: str | None = typer.Option(None, "--tenant"),
    state: str | None = typer.Option(None, "--state"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs."""
    query = [f"tenant={tenant}"] if tenant else []
    query += [f"state={state}"] if state else []
    records = call("GET", "/jobs" + ("?" + "&".join(query) if query else ""))
    if json_out:
        print_json(records)
        return
    table = Table(title="jobs")
    for col in ("id", "tenant", "user", "state", "attempts", "submitted", "error"):
        table.add_column(col)
    for r in records:
        table.add_row(r["id"], r["tenant"], r["user"], r["state"], str(r["attempts"]),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"])), (r["error"] or "")[:60])
    console.print(table)


def logs(job_id: str = typer.Argument(...)) -> None:
    """Print a job's log (state changes, waiting reasons, tracebacks)."""
    typer.echo(call("GET", f"/jobs/{job_id}/logs", text=True), nl=False)


def events(job_id: str = typer.Argument(...), json_out: bool = typer.Option(False, "--json")) -> None:
    """Print a job's state transitions with time, actor and detail."""
    found = call("GET", f"/jobs/{job_id}/events")
    if json_out:
        print_json(found)
        return
    for e in found:
        stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        console.print(f"{stamp} {e['kind']:<16} {e['actor']:<12} {e['detail']}", highlight=False)


def cancel(job_id: str = typer.Argument(...)) -> None:
    """Ask the server to cancel a job (recorded as yours: the token's user)."""
    from runtime.specs import JobState

    state = JobState(call("POST", f"/jobs/{job_id}/cancel", {})["state"])
    console.print(f"{job_id}: {state.value}" + (" (stopping its attempt)" if not state.finished else ""))
