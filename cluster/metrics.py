"""Prometheus metrics of capacity and health, refreshed from each snapshot (REQUIREMENTS 6.1 e,
9.2 e: monitor device state and resource use)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from schedulers.types import ClusterState

_DEVICE_LABELS = ("cluster", "tier", "site", "node", "kind", "model", "emulated")


class CapacityMetrics:
    """Gauges per device group and node; `update(state)` replaces every value, so nodes that
    left the cluster disappear from the metrics."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.devices = Gauge("suanli_devices", "Devices on a node (CPU: cores)", _DEVICE_LABELS, registry=self.registry)
        self.in_use = Gauge("suanli_devices_in_use", "Devices allocated to work", _DEVICE_LABELS, registry=self.registry)
        self.utilisation = Gauge("suanli_device_utilisation", "Measured busy fraction (where measured)",
                                 _DEVICE_LABELS, registry=self.registry)
        self.healthy = Gauge("suanli_node_healthy", "1 when the node and all its devices are healthy",
                             ("cluster", "tier", "site", "node"), registry=self.registry)
        self.snapshot_time = Gauge("suanli_snapshot_timestamp_seconds", "When the last snapshot was taken",
                                   registry=self.registry)

    def update(self, state: ClusterState) -> None:
        """Set every gauge from `state`."""
        for gauge in (self.devices, self.in_use, self.utilisation, self.healthy):
            gauge.clear()
        for node in state.nodes:
            name = node.labels.get("node-name", node.id[:12])
            self.healthy.labels(node.cluster, node.tier, node.site, name).set(1 if node.healthy else 0)
            for d in node.devices:
                labels = (node.cluster, node.tier, node.site, name, d.kind, d.model, str(node.emulated).lower())
                self.devices.labels(*labels).set(d.count)
                self.in_use.labels(*labels).set(d.in_use)
                if d.utilisation is not None:
                    self.utilisation.labels(*labels).set(d.utilisation)
        self.snapshot_time.set(state.taken_at)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
