"""`suanli serve deploy|list|delete`: deployed models on the server's Ray Serve (thin client)."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime.cli.common import console, fail, print_json
from runtime.cli.jobs import api_errors, client_or_fail

serve_app = typer.Typer(no_args_is_help=True, help="Serve registry versions on Ray Serve, edge first.")


@serve_app.command("deploy")
def deploy(
    registry: Path = typer.Argument(..., help="Registry directory (on the server)."),
    model: str = typer.Argument(..., help="Model name in the registry."),
    version: str = typer.Option("production", "--version", help="Version number, or production / staging."),
    site: list[str] = typer.Option([], "--site", help="A site whose edge nodes get a deployment (repeatable)."),
    block: float | None = typer.Option(None, "--block", help="Decision thresholds: block >= hold >= warn."),
    hold: float | None = typer.Option(None, "--hold"),
    warn: float | None = typer.Option(None, "--warn"),
    min_replicas: int = typer.Option(1, "--min-replicas"),
    max_replicas: int = typer.Option(1, "--max-replicas"),
    max_ongoing: int = typer.Option(128, "--max-ongoing-requests"),
    max_queued: int = typer.Option(64, "--max-queued-requests"),
    deadline_ms: float = typer.Option(150, "--edge-deadline-ms", help="Time the edge gets before the centre answers."),
    request_deadline_ms: float = typer.Option(
        1000, "--request-deadline-ms",
        help="The router answers 504 when it has no answer this long after reading a request "
             "(a caller's X-Request-Timeout-Ms header shortens it)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Deploy a registry version (verified with the server's pinned signing key); prints its HTTP
    entry. Its routes need a scoring token: `suanli serve token APP`."""
    thresholds = None
    if any(v is not None for v in (block, hold, warn)):
        if None in (block, hold, warn):
            raise fail("thresholds: give --block, --hold and --warn together")
        thresholds = {"block": block, "hold": hold, "warn": warn}
    settings = {"thresholds": thresholds, "min_replicas": min_replicas, "max_replicas": max_replicas,
                "max_ongoing_requests": max_ongoing, "max_queued_requests": max_queued, "edge_deadline_ms": deadline_ms,
                "request_deadline_ms": request_deadline_ms}
    try:
        with client_or_fail() as client:
            endpoint = client.deploy(registry, model, int(version) if version.isdigit() else version, site,
                                     **settings)
    except api_errors() as exc:
        raise fail(str(exc)) from None
    if json_out:
        print_json({"app": endpoint.app, "model": endpoint.model, "url": endpoint.url, "sites": endpoint.sites})
        return
    console.print(f"{endpoint.model} serving: centre {endpoint.centre_url}")
    for s in endpoint.sites:
        console.print(f"  site {s}: {endpoint.site_url(s)} (edge first, centre on failure)")
    console.print("scoring routes, for a client that fails over itself (ScoringClient, one hop fewer): centre "
                  f"{endpoint.centre_route}" + "".join(f"; site {s} {endpoint.edge_route(s)}" for s in endpoint.sites))


@serve_app.command("token")
def token(app: str = typer.Argument(..., help="Application name, e.g. fraud-v1.")) -> None:
    """Print a scoring token for a deployed version (send it as Authorization: Bearer; it lasts 10
    minutes; the caller's role needs endpoints:score)."""
    from runtime.cli.jobs import call

    console.print(call("POST", f"/deployments/{app}/token", {})["token"], soft_wrap=True)


@serve_app.command("list")
def list_deployments(json_out: bool = typer.Option(False, "--json")) -> None:
    """The deployed applications and their status."""
    from runtime.cli.jobs import call

    apps = call("GET", "/deployments")
    if json_out:
        print_json(apps)
        return
    for a in apps:
        console.print(f"{a['app']}: {a['status']} ({', '.join(f'{d} {v}' for d, v in a['deployments'].items())})")


@serve_app.command("delete")
def delete(app: str = typer.Argument(..., help="Application name, e.g. fraud-v1.")) -> None:
    """Stop serving an application."""
    from runtime.cli.jobs import call

    call("DELETE", f"/deployments/{app}")
    console.print(f"deleted {app}")
