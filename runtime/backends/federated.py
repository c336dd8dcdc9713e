"""One backend for every cluster the server schedules onto: the Ray cluster the server joined
(`local`, any cluster name the registry does not hold) and each registered cluster (a
`RemoteRayBackend`, created when first used and replaced when its entry changes). Calls go to
the backend of the placement's cluster, or of the cluster named in the attempt's handle."""

from __future__ import annotations

from cluster.federation import ClusterEntry, Federation
from runtime.backends.base import AttemptStatus, ClusterBackend, LaunchSpec
from runtime.backends.ray_remote import RemoteRayBackend
from schedulers.types import Placement


class FederatedBackend:
    """Dispatches to the local backend or a registered cluster's remote backend."""

    def __init__(self, local: ClusterBackend | None, federation: Federation | None = None, runs_dir=None,
                 entries=None, token_for=None):
        self.local = local
        self.federation = federation
        self.runs_dir = runs_dir
        self.entries = entries or (lambda: [])  # the registry, read when a cluster is first used
        self.token_for = token_for or (lambda name: None)  # a cluster's Ray auth token, from the secrets store
        self._remote: dict[str, RemoteRayBackend] = {}

    def _entry(self, name: str | None) -> ClusterEntry | None:
        if not name or self.federation is None:
            return None
        return next((e for e in self.entries() if e.name == name), None)

    def for_cluster(self, name: str | None) -> ClusterBackend:
        """The backend carrying out placements on cluster `name`."""
        known = self._remote.get(name)
        if known is not None:
            return known
        entry = self._entry(name)
        if entry is None:
            return self.local
        backend = RemoteRayBackend(entry, self.runs_dir, health=lambda: self.federation.health(entry.name),
                                   token=self.token_for(entry.name))
        self._remote[name] = backend
        return backend

    def forget(self, name: str) -> None:
        """Drop the cached backend of a removed or re-registered cluster."""
        self._remote.pop(name, None)

    def lost_since(self, cluster: str) -> float | None:
        """When a registered cluster was declared lost (None while healthy, unknown or local)."""
        if self.federation is None or self.federation.health(cluster) != "lost":
            return None
        return self.federation.lost_since(cluster)

    def lost_clusters(self) -> dict[str, float]:
        if self.federation is None:
            return {}
        return {s["name"]: s["lost_since"] for s in self.federation.status() if s["health"] == "lost"}

    # ---- the ClusterBackend interface, dispatched ------------------------------------------
    def name_for(self, cluster: str) -> str:
        return self.for_cluster(cluster).name

    def handle_for(self, spec: LaunchSpec, cluster: str | None = None) -> dict:
        return self.for_cluster(cluster).handle_for(spec)

    def launch(self, placement: Placement, spec: LaunchSpec) -> None:
        self.for_cluster(placement.cluster).launch(placement, spec)

    def poll(self, handle: dict) -> AttemptStatus:
        return self.for_cluster(handle.get("cluster")).poll(handle)

    def stop(self, handle: dict, force: bool = False) -> None:
        self.for_cluster(handle.get("cluster")).stop(handle, force)

    def release(self, handle: dict) -> None:
        self.for_cluster(handle.get("cluster")).release(handle)

    def fence(self, handle: dict) -> None:
        backend = self.for_cluster(handle.get("cluster"))
        if isinstance(backend, RemoteRayBackend):
            backend.fence(handle)
