"""`suanli demo`: bring up the embedded default and show what suanli sees."""

from __future__ import annotations

from rich.table import Table

from runtime.cli.capacity import capacity_table
from runtime.cli.common import cluster_session, console


def inventory_table(found) -> Table:
    """This machine's discovered devices as a rich table."""
    table = Table(title="Devices on this machine")
    for col in ("kind", "model", "index", "count", "memory", "utilisation", "temperature", "healthy"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.kind, d.model, str(d.index), str(d.count), f"{d.memory_total_bytes / 2**30:.1f} GiB",
            "-" if d.utilisation is None else f"{100 * d.utilisation:.0f}%",
            "-" if d.temperature_c is None else f"{d.temperature_c:.0f} C",
            "yes" if d.healthy else "NO",
        )
    return table


def demo() -> None:
    """Start the embedded default (single-node Ray on loopback) and print inventory and capacity."""
    import cluster
    from cluster.capacity import capacity_report
    from cluster.devices import discover_local

    found = discover_local()
    console.print(inventory_table(found))
    if not any(d.kind == "gpu" for d in found):
        console.print("No NVIDIA GPU found (NVML unavailable): running on the CPU only.")
    with cluster_session():
        report = capacity_report(cluster.snapshot())
    console.print(capacity_table(report))
