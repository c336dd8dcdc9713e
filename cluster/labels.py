"""The Ray labels and custom resources that say what a node is, shared by every way of starting
a node (embedded, emulated, Kubernetes) and read back by `cluster.snapshot`.

Labels (selectable with Ray's ``label_selector``): ``cluster``, ``tier``, ``site``,
``accelerator`` (gpu/npu/fpga/asic/cpu), ``accelerator-model``, ``accelerator-memory-gb``,
``emulated`` and ``node-name``. Custom resources (for Ray versions or APIs without label
selectors): ``tier:<tier>``, ``site:<site>``, ``cluster:<name>``, ``accelerator_type:<model>``
(Ray's own convention) each with amount 1, so a task asks for 0.001 of it, and ``NPU``, ``FPGA``,
``ASIC`` counts (GPUs use Ray's ``num_gpus``).
"""

from __future__ import annotations

LABEL_CLUSTER = "cluster"
LABEL_TIER = "tier"
LABEL_SITE = "site"
LABEL_ACCELERATOR = "accelerator"
LABEL_ACCELERATOR_MODEL = "accelerator-model"
LABEL_ACCELERATOR_MEMORY_GB = "accelerator-memory-gb"
LABEL_EMULATED = "emulated"
LABEL_NODE_NAME = "node-name"
LABEL_CPU_MODEL = "cpu-model"

# Ray resource names holding each accelerator kind's count.
RAY_RESOURCE_FOR_KIND = {"gpu": "GPU", "npu": "NPU", "fpga": "FPGA", "asic": "ASIC"}
MARKER_AMOUNT = 0.001  # what one task asks of a marker resource such as "site:dc1"


def node_labels_and_resources(
    *,
    cluster: str,
    tier: str,
    site: str,
    accelerators: dict[str, tuple[str, int, int]],
    emulated: bool,
    name: str,
    cpu_model: str | None = None,
) -> tuple[dict[str, str], dict[str, float]]:
    """Labels and custom resources for a node. `accelerators` maps kind to (model, count,
    memory bytes per device). GPU counts are left to Ray's `num_gpus`."""
    labels = {
        LABEL_CLUSTER: cluster,
        LABEL_TIER: tier,
        LABEL_SITE: site,
        LABEL_EMULATED: "true" if emulated else "false",
        LABEL_NODE_NAME: name,
        LABEL_ACCELERATOR: "cpu",
    }
    if cpu_model:
        labels[LABEL_CPU_MODEL] = cpu_model[:63]
    resources: dict[str, float] = {f"tier:{tier}": 1, f"site:{site}": 1, f"cluster:{cluster}": 1}
    for kind, (model, count, memory_bytes) in accelerators.items():
        labels[LABEL_ACCELERATOR] = kind
        labels[LABEL_ACCELERATOR_MODEL] = model
        if memory_bytes:
            labels[LABEL_ACCELERATOR_MEMORY_GB] = f"{memory_bytes / 2**30:g}"
        resources[f"accelerator_type:{model}"] = 1
        if kind != "gpu":
            resources[RAY_RESOURCE_FOR_KIND[kind]] = count
    return labels, resources
