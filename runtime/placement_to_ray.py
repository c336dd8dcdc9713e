"""Turning a scheduler `Placement` into Ray work that runs exactly where it says.

Each worker becomes one placement-group bundle holding its devices (`GPU`, `NPU`, ... or `CPU`
cores), pinned to its node with a bundle label selector on Ray's own `ray.io/node-id` label. A
single-worker placement can also run as a plain task or actor with `task_options`.
"""

from __future__ import annotations

from typing import Any

from cluster.labels import RAY_RESOURCE_FOR_KIND
from schedulers.types import Placement

NODE_ID_LABEL = "ray.io/node-id"


def ray_resource(kind: str) -> str:
    """The Ray resource name that counts devices of `kind`."""
    return "CPU" if kind == "cpu" else RAY_RESOURCE_FOR_KIND[kind]


def worker_bundles(placement: Placement, cpus_per_accelerator_worker: float = 0.0) -> tuple[list[dict], list[dict]]:
    """(bundles, bundle_label_selector): one bundle per worker, each pinned to its node."""
    bundles, selectors = [], []
    resource = ray_resource(placement.kind)
    for a in placement.assignments:
        bundle: dict[str, float] = {resource: float(a.devices_per_worker)}
        if placement.kind != "cpu" and cpus_per_accelerator_worker:
            bundle["CPU"] = cpus_per_accelerator_worker
        for _ in range(a.workers):
            bundles.append(dict(bundle))
            selectors.append({NODE_ID_LABEL: a.node_id})
    return bundles, selectors


def create_placement_group(placement: Placement, timeout_s: float = 60.0, cpus_per_accelerator_worker: float = 0.0):
    """Reserve the placement's devices as a Ray placement group and wait until it is ready.

    Raises TimeoutError naming the job when Ray cannot reserve them in time (the snapshot was
    stale, or a node was lost); the group is removed in that case.
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    bundles, selectors = worker_bundles(placement, cpus_per_accelerator_worker)
    group = placement_group(bundles, strategy="PACK", name=f"suanli-{placement.job_id}",
                            bundle_label_selector=selectors)
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        raise TimeoutError(f"job {placement.job_id}: Ray could not reserve {len(bundles)} bundle(s) on "
                           f"{sorted(set(placement.node_ids))} within {timeout_s:g} s")
    return group


def bundle_options(group, bundle_index: int, placement: Placement) -> dict[str, Any]:
    """`.options(...)` for a task or actor that runs in one worker's bundle with its devices."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    a_devices = placement.assignments[0].devices_per_worker
    options: dict[str, Any] = {
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=bundle_index),
        "num_cpus": a_devices if placement.kind == "cpu" else 0,
    }
    if placement.kind == "gpu":
        options["num_gpus"] = a_devices
    elif placement.kind != "cpu":
        options["resources"] = {ray_resource(placement.kind): a_devices}
    return options


def task_options(placement: Placement) -> dict[str, Any]:
    """`.options(...)` that run a single-worker placement on its node, with its devices, without
    a placement group (a label selector on the node id)."""
    if len(placement.assignments) != 1 or placement.assignments[0].workers != 1:
        raise ValueError(f"placement of job {placement.job_id}: task_options needs one worker; use a placement group")
    [a] = placement.assignments
    options: dict[str, Any] = {"label_selector": {NODE_ID_LABEL: a.node_id},
                               "num_cpus": a.devices_per_worker if placement.kind == "cpu" else 0}
    if placement.kind == "gpu":
        options["num_gpus"] = a.devices_per_worker
    elif placement.kind != "cpu":
        options["resources"] = {ray_resource(placement.kind): a.devices_per_worker}
    return options
