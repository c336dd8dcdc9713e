"""The Ray backend: each attempt runs in a detached, named `AttemptRunner` actor on the Ray cluster
this server joined, with its workers pinned to the placement's nodes.

Handles name the actor (`{"actor": ..., "namespace": ..., "run_dir": ...}`), so any server
connected to the same cluster can poll, stop or release an attempt another server launched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace

import ray

from runtime.backends.base import AttemptStatus, LaunchSpec, attempt_name
from runtime.placement_to_ray import NODE_ID_LABEL
from runtime.rundir import AttemptDir, RunFileError
from runtime.training.attempt import AttemptRunner
from schedulers.types import Placement

NAMESPACE = "suanli-attempts"
# How long one poll waits for a runner's answer: a live runner answers in milliseconds; one still
# starting (its worker process spawning) answers seconds later, and the controller's step must not
# wait for it: its question stays asked and the answer is picked up by a later poll.
POLL_WAIT_S = 0.05
log = logging.getLogger(__name__)


class RayBackend:
    """Runs attempts on the connected Ray cluster (`ray.init` already done by the server)."""

    name = "ray"

    def __init__(self) -> None:
        self._launched: dict[str, object] = {}  # runners this process created, before GCS lists their names
        self._asked: dict[str, object] = {}  # runner name: its status call not yet answered
        self._answered: dict[str, AttemptStatus] = {}  # runner name: its latest answer

    def handle_for(self, spec: LaunchSpec) -> dict:
        return {"actor": attempt_name(spec.job_id, spec.attempt), "namespace": NAMESPACE, "run_dir": spec.run_dir}

    def launch(self, placement: Placement, spec: LaunchSpec) -> None:
        name = attempt_name(spec.job_id, spec.attempt)
        here = ray.get_runtime_context().get_node_id()  # the runner needs no device: beside the server
        try:
            runner = AttemptRunner.options(name=name, namespace=NAMESPACE, lifetime="detached",
                                           label_selector={NODE_ID_LABEL: here}).remote()
        except ValueError:  # a retried launch of the same attempt: the name is taken, the runner exists
            runner = ray.get_actor(name, namespace=NAMESPACE)
        self._launched[name] = runner
        runner.run.remote(asdict(spec), placement.to_dict())

    def _runner(self, handle: dict):
        if handle["actor"] in self._launched:
            return self._launched[handle["actor"]]
        try:
            return ray.get_actor(handle["actor"], namespace=handle["namespace"])
        except ValueError:
            return None

    def poll(self, handle: dict) -> AttemptStatus:
        """The runner's latest answer, waiting at most POLL_WAIT_S for a new one: a runner slow to
        answer is reported as it last was ("running" before its first answer), never as lost."""
        runner = self._runner(handle)
        workers = tuple((_worker_group(handle) or {}).get("workers", ()))
        if runner is None:
            return AttemptStatus("lost", error="the attempt's runner is gone from the Ray cluster (its node or "
                                 "the cluster was lost)", workers=workers)
        name = handle["actor"]
        call = self._asked.get(name)
        if call is None:
            call = self._asked[name] = runner.status.remote()
        ready, _ = ray.wait([call], timeout=POLL_WAIT_S)
        if not ready:
            last = self._answered.get(name)
            return replace(last, workers=workers) if last else AttemptStatus("running", workers=workers)
        del self._asked[name]
        try:
            status = ray.get(call)
        except ray.exceptions.RayActorError as exc:
            return AttemptStatus("lost", error=f"the attempt's runner died: {type(exc).__name__}", workers=workers)
        answer = self._answered[name] = AttemptStatus(
            status["phase"], error=status.get("error"), traceback=status.get("traceback"),
            checkpoint=status.get("checkpoint"), metrics=status.get("metrics") or {}, workers=workers)
        return answer

    def stop(self, handle: dict, force: bool = False) -> None:
        runner = self._runner(handle)
        if runner is None:
            self._remove_placement_group(handle)
            return
        if not force:
            runner.stop.remote()
            return
        ray.kill(runner, no_restart=True)  # its Ray Train controller and workers die with it
        self._remove_placement_group(handle)

    def release(self, handle: dict) -> None:
        runner = self._runner(handle)
        for known in (self._launched, self._asked, self._answered):
            known.pop(handle["actor"], None)
        if runner is not None:
            ray.kill(runner, no_restart=True)
        self._remove_placement_group(handle)

    @staticmethod
    def _remove_placement_group(handle: dict) -> None:
        """Remove the attempt's Ray Train placement group if it is still there (a forced stop
        leaves it to Ray Train's cleaner, which needs the dashboard; we do not wait for that)."""
        from ray._raylet import PlacementGroupID
        from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

        group = (_worker_group(handle) or {}).get("placement_group")
        if not group:
            return
        entry = placement_group_table().get(group)
        if entry and entry.get("state") != "REMOVED":
            deadline = time.time() + 5
            while True:
                try:
                    remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(group))))
                    return
                except Exception as exc:  # noqa: BLE001 - already removed by Ray Train: nothing to do
                    if (placement_group_table().get(group) or {}).get("state", "REMOVED") == "REMOVED":
                        return  # removed meanwhile (its owner was killed): no 5 s of retries in the controller
                    if time.time() > deadline:
                        log.warning("could not remove placement group %s: %s", group, exc)
                        return
                    time.sleep(0.2)



def _worker_group(handle: dict) -> dict | None:
    """The attempt's recorded worker group (None before it started, or when the record cannot be
    trusted: then the runner's own status is what counts)."""
    try:
        return AttemptDir.at(handle["run_dir"]).worker_group()
    except RunFileError:
        return None
