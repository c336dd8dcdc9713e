"""`suanli clusters add|list|status|remove`: the federation's registry (thin client of the server
named by SUANLI_SERVER, like every command)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from runtime.cli.common import console, fail, print_json
from runtime.cli.jobs import api_errors, call, client_or_fail

clusters_app = typer.Typer(no_args_is_help=True, help="Register Ray clusters to schedule onto, and see their health.")


@clusters_app.command("add")
def add(
    name: str = typer.Argument(..., help="A short name, e.g. bj-dc1."),
    address: str = typer.Option(..., "--address", help="Ray's job-submission address, e.g. http://10.0.0.5:8265."),
    site: str | None = typer.Option(None, "--site", help="Where it is (default: its name)."),
    tier: str = typer.Option("center", "--tier", help="center or edge."),
    storage: str | None = typer.Option(None, "--storage", help="The path at which its nodes see the server's runs "
                                       "directory (default: the same path)."),
    token_file: Path | None = typer.Option(None, "--token-file", help="A file holding its Ray auth token, read "
                                           "here and sent once; the server keeps it in its secrets store."),
    link: list[str] = typer.Option([], "--link", help="SITE=BYTES_PER_S[@LATENCY_MS] to another site (repeatable)."),
) -> None:
    """Register a cluster once the server has checked it (its dashboard answers with the token,
    its nodes see the runs directory at --storage); it is probed every 2 s and scheduled onto once
    healthy."""
    links = {}
    for item in link:
        other, _, rest = item.partition("=")
        bandwidth, _, latency = rest.partition("@")
        try:
            links[other] = {"bandwidth_bps": float(bandwidth), "latency_ms": float(latency or 0)}
        except ValueError:
            raise fail(f"--link: {item!r} is not SITE=BYTES_PER_S[@LATENCY_MS], e.g. bj-dc1=125e6@4") from None
    try:
        with client_or_fail() as client:
            added = client.add_cluster(name, address, site, tier, storage, token_file, links)
    except (*api_errors(), ValueError) as exc:  # ValueError: the token file, read here
        raise fail(str(exc)) from None
    console.print(f"registered {added['name']} ({added['address']}, site {added['site']}, {added['tier']})")


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at))


def clusters_table(rows: list[dict]) -> Table:
    table = Table(title="Clusters")
    for col in ("name", "site", "tier", "health", "nodes", "missed probes", "lost since", "last answer", "address"):
        table.add_column(col)
    for r in rows:
        health = r["health"] + (" (own)" if r.get("own") else "")
        table.add_row(r["name"], r.get("site") or "-", r.get("tier") or "-", health, str(r.get("nodes", "-")),
                      str(r.get("missed_probes", 0)), _when(r.get("lost_since")), _when(r.get("last_answer_at")),
                      r.get("address") or "-")
    return table


def _show(json_out: bool, errors: bool) -> None:
    rows = call("GET", "/clusters")
    if json_out:
        print_json(rows)
        return
    console.print(clusters_table(rows))
    for r in rows if errors else ():
        if r["health"] != "healthy" and r.get("last_error"):
            console.print(f"{r['name']}: {r['last_error']}")


@clusters_app.command("list")
def list_clusters(json_out: bool = typer.Option(False, "--json")) -> None:
    """Every cluster the server schedules onto, with its health."""
    _show(json_out, errors=False)


@clusters_app.command("status")
def status(json_out: bool = typer.Option(False, "--json")) -> None:
    """The same as list, with the last probe error of each cluster that is not healthy."""
    _show(json_out, errors=True)


@clusters_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Forget a cluster (refused while attempts run on it)."""
    call("DELETE", f"/clusters/{name}")
    console.print(f"removed {name}")
