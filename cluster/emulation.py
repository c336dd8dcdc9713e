"""Emulated heterogeneous clusters: a local multi-node Ray cluster whose GPUs, NPUs and edge
nodes are logical resources, described by a small YAML file. For tests and demos only; every node
it starts carries the label ``emulated=true`` and everything reported about it says so.

    name: demo
    nodes:
      - {tier: center, site: dc1, count: 2, cpu: 1, gpu: {model: A100, count: 2, memory_gb: 80}}
      - {tier: center, site: dc1, count: 1, cpu: 1, npu: {model: Ascend910B, count: 4, memory_gb: 64}}
      - {tier: edge, site: branch-sh, count: 1, cpu: 1}
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cluster.config import check_label_value
from cluster.errors import ConfigError, one_line, read_yaml_mapping
from cluster.labels import node_labels_and_resources
from cluster.serve_ingress import serve_ingress_environment

EMULATED_DEVICE_KINDS = ("cpu", "gpu", "npu", "fpga", "asic")
MAX_EMULATED_NODES = 64  # each emulated node is a real raylet process on this machine
_NODE_FIELDS = ("tier", "site", "count", "memory_gb", *EMULATED_DEVICE_KINDS)


class AcceleratorSpec(BaseModel):
    """`count` accelerators of `model`, each with `memory_gb` of device memory."""

    model_config = ConfigDict(extra="forbid")
    model: str
    count: int = Field(ge=1)
    memory_gb: float = Field(default=0, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return check_label_value("model", value)


class NodeGroupSpec(BaseModel):
    """`count` identical nodes at one tier and site."""

    model_config = ConfigDict(extra="forbid")
    tier: Literal["center", "edge"]
    site: str
    count: int = Field(default=1, ge=1, le=MAX_EMULATED_NODES)
    cpu: int = Field(default=1, ge=1, le=256)
    memory_gb: float = Field(default=2, gt=0, le=4096)
    gpu: AcceleratorSpec | None = None
    npu: AcceleratorSpec | None = None
    fpga: AcceleratorSpec | None = None
    asic: AcceleratorSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in _NODE_FIELDS:
                    raise ValueError(
                        f"unknown field or device kind {key!r}; allowed: {', '.join(_NODE_FIELDS)}"
                    )
        return data

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return check_label_value("site", value)

    def accelerators(self) -> dict[str, AcceleratorSpec]:
        """The accelerator specs this group sets, by device kind."""
        return {k: getattr(self, k) for k in ("gpu", "npu", "fpga", "asic") if getattr(self, k)}


class EmulationSpec(BaseModel):
    """A named emulated cluster of node groups."""

    model_config = ConfigDict(extra="forbid")
    name: str
    nodes: list[NodeGroupSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_label_value("name", value)

    @model_validator(mode="after")
    def _bounded(self) -> EmulationSpec:
        total = sum(group.count for group in self.nodes)
        if total > MAX_EMULATED_NODES:
            raise ValueError(f"nodes: {total} emulated nodes in all; at most {MAX_EMULATED_NODES} (each is a raylet)")
        return self

    def expanded(self) -> list[NodeGroupSpec]:
        """One entry per node (groups repeated `count` times)."""
        return [group for group in self.nodes for _ in range(group.count)]


def parse_emulation(data: Any, source: str = "emulation") -> EmulationSpec:
    """Validate an emulation mapping; ConfigError with one line naming the field on failure."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping with 'name' and 'nodes'")
    try:
        return EmulationSpec(**data)
    except ValidationError as err:
        raise one_line(err, source) from None


def load_emulation(path: str | Path) -> EmulationSpec:
    """Read and validate an emulation YAML file."""
    return parse_emulation(read_yaml_mapping(path, "--emulate", "'name' and 'nodes'"), str(path))


def ray_node_args(spec: EmulationSpec, index: int, group: NodeGroupSpec) -> dict[str, Any]:
    """Keyword arguments for `ray.cluster_utils.Cluster.add_node` for one emulated node."""
    accelerators = {
        kind: (acc.model, acc.count, int(acc.memory_gb * 2**30)) for kind, acc in group.accelerators().items()
    }
    labels, resources = node_labels_and_resources(
        cluster=spec.name, tier=group.tier, site=group.site, accelerators=accelerators,
        emulated=True, name=f"{spec.name}-{index}",
    )
    args: dict[str, Any] = {
        "num_cpus": group.cpu,
        "resources": resources,
        "labels": labels,
        "object_store_memory": 80 * 2**20,
        "memory": int(group.memory_gb * 2**30),
    }
    if "gpu" in accelerators:
        args["num_gpus"] = accelerators["gpu"][1]
    return args


class EmulatedCluster:
    """A running emulated cluster; use as a context manager, or call `shutdown()`.

    The driver (this process) is connected to it with `ray.init` while it runs. It runs with Ray
    token auth and the token at `token_path` (a fresh one in a private temp dir by default, never
    the user's `~/.ray`); this process's environment points at it, so the processes it starts
    (a server joining with `--ray-address`) connect with it too.
    """

    def __init__(self, spec: EmulationSpec, token_path: Path | None = None):
        from cluster.ray_auth import ensure_token, use_token
        from cluster.ray_cluster import prepare_loopback

        prepare_loopback()
        from ray.cluster_utils import Cluster

        if token_path is None:  # removed when this process exits: Ray's threads may read it until then
            token_dir = tempfile.mkdtemp(prefix="suanli-emulated-")
            atexit.register(shutil.rmtree, token_dir, True)
            token_path = ensure_token(Path(token_dir))
        use_token(token_path)
        self.spec = spec
        self.environment = serve_ingress_environment()  # every node's, so a node that replaces one matches it
        nodes = spec.expanded()
        self._cluster = Cluster(
            initialize_head=True,
            head_node_args={**self._node_args(0, nodes[0]), "include_dashboard": False},
        )
        for i, group in enumerate(nodes[1:], start=1):
            self._cluster.add_node(**self._node_args(i, group))
        self._cluster.wait_for_nodes()
        import ray

        ray.init(address=self._cluster.address, include_dashboard=False, log_to_driver=False)

    def _node_args(self, index: int, group: NodeGroupSpec) -> dict[str, Any]:
        return {**ray_node_args(self.spec, index, group), "env_vars": dict(self.environment)}

    @property
    def address(self) -> str:
        """The GCS address other drivers can join (always on loopback)."""
        return self._cluster.address

    def remove_node(self, ray_node_id: str) -> None:
        """Lose one emulated node as a machine is lost: its Ray daemons and every process they
        started (the workers: replicas, training workers) get SIGKILL together, so nothing of the
        node answers afterwards. (Killing only the daemons would leave its workers serving until
        they notice their raylet is gone, about a second, which no lost machine does.)"""
        for node in self._cluster.list_all_nodes():
            if node.node_id == ray_node_id:
                _kill_with_descendants([p.process.pid for ps in node.all_processes.values() for p in ps])
                self._cluster.remove_node(node, allow_graceful=False)
                return
        raise KeyError(f"node_id: no emulated node {ray_node_id}")

    def add_node_like(self, index: int, cpu_priority: Literal["normal", "idle"] = "normal") -> str:
        """Start a new node built like the spec's node `index` (a lost machine coming back); its
        Ray node id. With `cpu_priority="idle"` the node's daemons and every worker they start
        run under Linux's SCHED_IDLE policy: on this one host the new node takes only CPU the
        other emulated nodes leave idle, as a replacement machine brings its own cores instead of
        taking theirs (benchmarks use it; the node keeps the policy for its life)."""
        args = self._node_args(index, self.spec.expanded()[index])
        with _forks_at_idle_priority() if cpu_priority == "idle" else nullcontext():
            node = self._cluster.add_node(**args)
        self._cluster.wait_for_nodes()
        return node.node_id

    def shutdown(self) -> None:
        """Disconnect the driver and stop every node."""
        import ray

        ray.shutdown()
        self._cluster.shutdown()

    def __enter__(self) -> EmulatedCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def _kill_with_descendants(pids: list[int]) -> None:
    """SIGKILL the processes and all their descendants, found before the first is killed (a
    killed parent's children are reparented and could not be found afterwards)."""
    import psutil

    found = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for process in found:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


_idle_forks_from: int | None = None  # the thread whose forks start under SCHED_IDLE, while one is set
_idle_hook_registered = False


def _idle_in_child() -> None:
    if _idle_forks_from == threading.get_ident():  # the child of a fork keeps the forking thread's id
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


@contextmanager
def _forks_at_idle_priority() -> Iterator[None]:
    """Every process this thread forks meanwhile starts under SCHED_IDLE (an at-fork hook in the
    child, before it execs: Ray starts its daemons with a preexec function, which runs the hooks);
    this process keeps its own policy, which an unprivileged process could not get back."""
    global _idle_forks_from, _idle_hook_registered
    if not _idle_hook_registered:
        os.register_at_fork(after_in_child=_idle_in_child)
        _idle_hook_registered = True
    _idle_forks_from = threading.get_ident()
    try:
        yield
    finally:
        _idle_forks_from = None
