"""Capacity reports for platform operators: what each cluster, tier and device kind/model holds,
uses and has free, as a JSON-ready dict, and as an HTML page with charts."""

from __future__ import annotations

import html
import io
from collections import defaultdict

from schedulers.types import ClusterState


def capacity_report(state: ClusterState) -> dict:
    """The report as a dict: `nodes` (each with its devices), `rows` per (cluster, tier, kind,
    model), `totals` per device kind, and `emulated` when any node is emulated."""
    nodes = []
    rows: dict[tuple, dict] = {}
    totals: dict[str, dict] = defaultdict(lambda: {"count": 0, "in_use": 0.0, "free": 0.0})
    for node in state.nodes:
        devices = []
        for d in node.devices:
            devices.append(
                {
                    "kind": d.kind,
                    "model": d.model,
                    "count": d.count,
                    "in_use": round(d.in_use, 3),
                    "free": round(d.free, 3),
                    "memory_bytes": d.memory_bytes,
                    "utilisation": d.utilisation,
                    "healthy": d.healthy,
                }
            )
            key = (node.cluster, node.tier, d.kind, d.model)
            row = rows.setdefault(
                key,
                {"cluster": node.cluster, "tier": node.tier, "kind": d.kind, "model": d.model, "nodes": 0,
                 "total": 0, "in_use": 0.0, "free": 0.0, "utilisation": None, "emulated": node.emulated},
            )
            row["nodes"] += 1
            row["total"] += d.count
            row["in_use"] += d.in_use
            row["free"] += d.free
            if d.utilisation is not None:
                row.setdefault("_measured", []).append(d.utilisation)
            row["emulated"] = row["emulated"] or node.emulated
            t = totals[d.kind]
            t["count"] += d.count
            t["in_use"] += d.in_use
            t["free"] += d.free
        nodes.append(
            {
                "id": node.id,
                "name": node.labels.get("node-name", node.id[:12]),
                "cluster": node.cluster,
                "tier": node.tier,
                "site": node.site,
                "emulated": node.emulated,
                "healthy": node.healthy,
                "devices": devices,
            }
        )
    for row in rows.values():
        measured = row.pop("_measured", None)
        row["utilisation"] = sum(measured) / len(measured) if measured else None
    for t in totals.values():
        t["allocation"] = round(t["in_use"] / t["count"], 4) if t["count"] else 0.0
    return {
        "taken_at": state.taken_at,
        "emulated": any(n.emulated for n in state.nodes),
        "nodes": nodes,
        "rows": sorted(rows.values(), key=lambda r: (r["cluster"], r["tier"], r["kind"], r["model"])),
        "totals": dict(totals),
    }


def _allocation_chart_svg(report: dict) -> str:
    """Stacked bars of in-use and free devices by device kind and by tier (matplotlib SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_kind = report["totals"]
    by_tier: dict[str, dict[str, float]] = defaultdict(lambda: {"in_use": 0.0, "free": 0.0})
    for row in report["rows"]:
        if row["kind"] != "cpu":
            key = f"{row['tier']} {row['kind']}"
        else:
            key = f"{row['tier']} cpu cores"
        by_tier[key]["in_use"] += row["in_use"]
        by_tier[key]["free"] += row["free"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, data, title in ((axes[0], by_kind, "by device kind"), (axes[1], by_tier, "by tier")):
        labels = list(data)
        used = [data[k]["in_use"] for k in labels]
        free = [data[k]["free"] for k in labels]
        ax.bar(labels, used, label="in use", color="#c0392b")
        ax.bar(labels, free, bottom=used, label="free", color="#27ae60")
        ax.set_title(f"Allocation {title}")
        ax.set_ylabel("devices (CPU: cores)")
        ax.legend()
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.0f}%"


def capacity_html(report: dict) -> str:
    """A self-contained HTML page: charts of allocation by device kind and tier, and the table."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(r['cluster'])}</td><td>{esc(r['tier'])}</td><td>{esc(r['kind'])}</td>"
        f"<td>{esc(r['model'])}</td><td>{r['total']:g}</td><td>{r['in_use']:g}</td><td>{r['free']:g}</td>"
        f"<td>{_percent(r['utilisation'])}</td><td>{'emulated' if r['emulated'] else 'real'}</td></tr>"
        for r in report["rows"]
    )
    banner = (
        "<p class='warn'>Emulated cluster: GPUs, NPUs and edge nodes here are logical Ray resources.</p>"
        if report["emulated"] else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>suanli capacity</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:nth-child(-n+4){{text-align:left}}
.warn{{color:#a04000;font-weight:bold}}</style></head><body>
<h1>suanli capacity</h1>{banner}
{_allocation_chart_svg(report)}
<table><tr><th>cluster</th><th>tier</th><th>kind</th><th>model</th><th>total</th><th>in use</th>
<th>free</th><th>utilisation</th><th>source</th></tr>{rows}</table></body></html>"""
