"""Kubernetes node discovery: nodes and their allocatable devices, read through the official
`kubernetes` client, as the scheduler's `ClusterState`.

What is read from each node:
- allocatable `cpu`, `memory`, `nvidia.com/gpu`, and Ascend NPUs (`huawei.com/Ascend910`,
  `huawei.com/Ascend310P`, `huawei.com/Ascend310`);
- GPU model from `nvidia.com/gpu.product` (set by NVIDIA's GPU feature discovery), NPU model from
  `accelerator-type` / `accelerator` (set by Huawei's device plugin), or `suanli.io/accelerator-model`;
- tier: edge when `node-role.kubernetes.io/edge` is present, `openyurt.io/is-edge-worker=true`,
  or `suanli.io/tier=edge`; else center;
- site: `suanli.io/site`, else OpenYurt's `apps.openyurt.io/nodepool`, else
  `topology.kubernetes.io/zone`, else "default";
- health: the Ready condition is True and the node is schedulable.
Devices in use are the requests of the node's pods that have not finished.

Against a real cluster: `kubernetes_snapshot()` loads the in-cluster service account or
~/.kube/config; it needs nodes and pods get/list cluster-wide (nodes are cluster-scoped). The server
does not call it, so the Helm chart grants no such role. It has been tested here
against the client's own model objects built from recorded node JSON, not yet against a live API
server.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes.utils import parse_quantity

from cluster.devices.nvidia_gpu import short_gpu_model
from schedulers.types import ClusterState, Device, Node

GPU_RESOURCE = "nvidia.com/gpu"
NPU_RESOURCES = ("huawei.com/Ascend910", "huawei.com/Ascend310P", "huawei.com/Ascend310")
FINISHED_PHASES = ("Succeeded", "Failed")


def _tier(labels: dict[str, str]) -> str:
    if labels.get("suanli.io/tier") in ("center", "edge"):
        return labels["suanli.io/tier"]
    if "node-role.kubernetes.io/edge" in labels or labels.get("openyurt.io/is-edge-worker") == "true":
        return "edge"
    return "center"


def _site(labels: dict[str, str]) -> str:
    for key in ("suanli.io/site", "apps.openyurt.io/nodepool", "topology.kubernetes.io/zone"):
        if labels.get(key):
            return labels[key]
    return "default"


def _npu_model(labels: dict[str, str], resource: str) -> str:
    if labels.get("suanli.io/accelerator-model"):
        return labels["suanli.io/accelerator-model"]
    kind = labels.get("accelerator-type", "").lower()  # e.g. module-910b-8
    if "910b" in kind:
        return "Ascend910B"
    accelerator = labels.get("accelerator", "")  # e.g. huawei-Ascend910
    if accelerator.startswith("huawei-"):
        return accelerator.removeprefix("huawei-")
    return resource.split("/", 1)[1]


def _requests_by_node(pods) -> dict[str, dict[str, float]]:
    used: dict[str, dict[str, float]] = {}
    for pod in pods.items:
        if not pod.spec or not pod.spec.node_name or (pod.status and pod.status.phase in FINISHED_PHASES):
            continue
        per_node = used.setdefault(pod.spec.node_name, {})
        for container in pod.spec.containers or []:
            requests = (container.resources.requests or {}) if container.resources else {}
            limits = (container.resources.limits or {}) if container.resources else {}
            for name in ("cpu", GPU_RESOURCE, *NPU_RESOURCES):
                value = requests.get(name, limits.get(name))  # extended resources may set only limits
                if value is not None:
                    per_node[name] = per_node.get(name, 0.0) + float(parse_quantity(value))
    return used


def node_from_kubernetes(node, used: dict[str, float], cluster_name: str) -> Node:
    """One `V1Node` (with its pods' requests) as a scheduler `Node`."""
    labels = dict(node.metadata.labels or {})
    allocatable: dict[str, Any] = node.status.allocatable or {}
    memory = int(parse_quantity(allocatable.get("memory", "0")))
    devices = []
    cpus = float(parse_quantity(allocatable.get("cpu", "0")))
    if cpus:
        devices.append(Device("cpu", labels.get("suanli.io/cpu-model", "cpu"), cpus, memory_bytes=memory,
                              in_use=min(cpus, used.get("cpu", 0.0))))
    gpus = int(parse_quantity(allocatable.get(GPU_RESOURCE, "0")))
    if gpus:
        product = labels.get("nvidia.com/gpu.product", "")
        model = labels.get("suanli.io/accelerator-model") or (short_gpu_model(product.replace("-", " ", 1))
                                                              if product else "gpu")
        gpu_memory = int(labels.get("nvidia.com/gpu.memory", "0") or 0) * 2**20
        devices.append(Device("gpu", model, gpus, memory_bytes=gpu_memory, in_use=min(gpus, used.get(GPU_RESOURCE, 0))))
    for resource in NPU_RESOURCES:
        npus = int(parse_quantity(allocatable.get(resource, "0")))
        if npus:
            devices.append(Device("npu", _npu_model(labels, resource), npus, in_use=min(npus, used.get(resource, 0))))
    ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    schedulable = not (node.spec and node.spec.unschedulable)
    return Node(
        id=node.metadata.name,
        cluster=labels.get("suanli.io/cluster", cluster_name),
        tier=_tier(labels),
        site=_site(labels),
        devices=tuple(devices),
        labels=labels,
        healthy=ready and schedulable,
    )


def kubernetes_snapshot(core_api=None, cluster_name: str = "kubernetes") -> ClusterState:
    """Every node of a Kubernetes cluster as `ClusterState`. `core_api` is a `CoreV1Api`; by
    default one is built from the in-cluster service account, else from ~/.kube/config."""
    if core_api is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        core_api = client.CoreV1Api()
    nodes = core_api.list_node()
    pods = core_api.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,status.phase!=Failed")
    used = _requests_by_node(pods)
    return ClusterState(
        nodes=tuple(node_from_kubernetes(n, used.get(n.metadata.name, {}), cluster_name) for n in nodes.items),
        taken_at=time.time(),
    )
