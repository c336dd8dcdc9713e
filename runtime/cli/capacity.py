"""`suanli capacity`: what each cluster, tier and device kind holds, uses and has free."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from runtime.cli.common import console, emulated_session, print_json


def capacity_table(report: dict) -> Table:
    """The report's rows as a rich table."""
    title = "Capacity" + (" (EMULATED: logical devices)" if report["emulated"] else "")
    table = Table(title=title)
    for col in ("cluster", "tier", "kind", "model", "nodes", "total", "in use", "free", "utilisation", "source"):
        table.add_column(col, justify="right" if col in ("nodes", "total", "in use", "free", "utilisation") else "left")
    for r in report["rows"]:
        util = "-" if r["utilisation"] is None else f"{100 * r['utilisation']:.0f}%"
        table.add_row(
            r["cluster"], r["tier"], r["kind"], r["model"], str(r["nodes"]), f"{r['total']:g}",
            f"{r['in_use']:g}", f"{r['free']:g}", util, "emulated" if r["emulated"] else "real",
        )
    return table


def capacity(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML page with charts to this file."),
    emulate: Path | None = typer.Option(None, "--emulate", help="Inspect an emulated cluster from this YAML file "
                                        "instead (started here for the report, then stopped; no server involved)."),
) -> None:
    """Print the capacity of the server's cluster (the local server unless SUANLI_SERVER is set)."""
    from cluster.capacity import capacity_html, capacity_report

    if emulate is not None:
        import cluster

        with emulated_session(emulate):
            report = capacity_report(cluster.snapshot())
    else:
        from runtime.cli.jobs import call

        report = call("GET", "/capacity")
    if html is not None:
        html.write_text(capacity_html(report))
    if json_out:
        print_json(report)
        return
    console.print(capacity_table(report))
    if len(report.get("clusters", ())) > 1:  # registered clusters beside the server's own: their health
        from runtime.cli.clusters import clusters_table

        console.print(clusters_table(report["clusters"]))
    if report.get("quotas"):
        from runtime.cli.users import quota_table

        console.print(quota_table(report["quotas"]))
    if html is not None:
        console.print(f"wrote {html}")
