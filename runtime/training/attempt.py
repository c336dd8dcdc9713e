"""One attempt of a job, run by a detached Ray actor so that it outlives the server that launched
it: a restarted server (or a standby that takes the lease) finds it by name and adopts it.

The actor prepares the job's data (split plan and preprocessing, `runtime.data.ray_io.prepare`,
or reuses those of the checkpoint it resumes from), then builds the Ray Train trainer of the model
(`TorchTrainer`, `XGBoostTrainer` or `LightGBMTrainer`) with the splits as Ray Datasets, workers
pinned to the placement's nodes (one label selector on `ray.io/node-id` per worker) and Ray
Train's own retries off: failures go back to the controller, whose one failure policy decides
retry (a new placement) or fail. User code (cloudpickled bytes) is loaded here, inside the
cluster, never in the server.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import ray

from runtime.placement_to_ray import NODE_ID_LABEL
from runtime.rundir import AttemptDir
from schedulers.types import Placement


def worker_selectors(placement: Placement) -> list[dict]:
    """One label selector per worker, pinning it to the node its placement names."""
    return [{NODE_ID_LABEL: a.node_id} for a in placement.assignments for _ in range(a.workers)]


def scaling_for(placement: Placement):
    """Ray Train's ScalingConfig for a placement: its workers, devices each, pinned node by node."""
    from ray.train import ScalingConfig

    from runtime.placement_to_ray import ray_resource

    selectors = worker_selectors(placement)
    per_worker = placement.assignments[0].devices_per_worker
    kind = placement.kind
    return ScalingConfig(num_workers=len(selectors), use_gpu=kind == "gpu",
                         resources_per_worker={ray_resource(kind): float(per_worker)}, label_selector=selectors)


def root_cause(exc: BaseException) -> str:
    """One line naming what really failed, digging through Ray Train's wrappers."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        exc = next(iter(failures.values()))
    cause = getattr(exc, "cause", None) or exc.__cause__
    while cause is not None and cause is not exc:
        exc, cause = cause, getattr(cause, "cause", None) or cause.__cause__
    text = str(exc).strip().splitlines()
    last = next((line for line in reversed(text) if line.strip()), "")
    return f"{type(exc).__name__}: {last}" if last else type(exc).__name__


def prepared_data(config: dict):
    """The job's split plan and preprocessing: those of the checkpoint being resumed (the same
    rows and features on every attempt), else prepared now."""
    from runtime.data.ray_io import PreparedData, prepare
    from runtime.training.checkpoints import verify_checkpoint

    if config.get("resume_path") and PreparedData.saved_in(config["resume_path"]):
        return PreparedData.load(verify_checkpoint(config["resume_path"], config.get("resume_sha256")))
    return prepare(config["dataset"], config["label"], config["categorical"], config["validation_fraction"],
                   config["test_fraction"], config["seed"])


def build_trainer(spec: dict, config: dict, placement: Placement, run_dir: Path):
    """The Ray Train trainer for the job's model (or its user function), its datasets attached."""
    import cloudpickle
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig

    from runtime.training.recorder import WorkerGroupRecorder

    common = {"scaling_config": scaling_for(placement),
              "run_config": RunConfig(name=run_dir.name, storage_path=str(run_dir.parent),
                                      failure_config=FailureConfig(max_failures=0),
                                      checkpoint_config=CheckpointConfig(num_to_keep=2),
                                      callbacks=[WorkerGroupRecorder(str(run_dir))])}
    model = config.get("model")
    if spec.get("train_fn") or not model:
        from ray.train.torch import TorchConfig, TorchTrainer

        return TorchTrainer(cloudpickle.loads(spec["train_fn"]), train_loop_config=config,
                            torch_config=TorchConfig(backend=config.get("collective_backend", "gloo")), **common)
    from runtime.data.ray_io import split_dataset

    prepared = prepared_data(config)
    prepared_dir = AttemptDir.at(run_dir).prepared_dir
    config["prepared_dir"] = str(prepared_dir)
    prepared.save(prepared_dir)
    datasets = {name: split_dataset(config["dataset"], prepared, name) for name in ("train", "val", "test")}
    if model == "xgboost":
        from ray.train.xgboost import XGBoostTrainer

        from runtime.training.gbdt_loop import xgboost_train_loop

        return XGBoostTrainer(xgboost_train_loop, train_loop_config=config, datasets=datasets,
                              dataset_config=DataConfig(datasets_to_split=["train", "val"]), **common)
    if model == "lightgbm":
        from ray.train.lightgbm import LightGBMTrainer

        from runtime.training.gbdt_loop import lightgbm_train_loop

        return LightGBMTrainer(lightgbm_train_loop, train_loop_config=config, datasets=datasets,
                               dataset_config=DataConfig(datasets_to_split=["train"]), **common)
    from ray.train.torch import TorchConfig, TorchTrainer

    from runtime.training.torch_loop import torch_train_loop

    return TorchTrainer(torch_train_loop, train_loop_config=config, datasets=datasets,
                        dataset_config=DataConfig(datasets_to_split=["train"]),
                        torch_config=TorchConfig(backend=config.get("collective_backend", "gloo")), **common)


@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=4)
class AttemptRunner:
    """Runs one attempt's training in a thread; answers `status` and `stop` meanwhile."""

    def __init__(self) -> None:
        self._phase = "starting"
        self._outcome: dict = {}
        self._thread: threading.Thread | None = None
        self._attempt_dir: AttemptDir | None = None
        self._task = None

    def run(self, spec: dict, placement: dict) -> None:
        """Start the attempt (returns at once; idempotent). `placement` is `Placement.to_dict()`."""
        if self._thread is None:
            placement = Placement.from_dict(placement)
            self._attempt_dir = AttemptDir.at(spec["run_dir"])
            target = self._features if spec.get("kind") == "features" else self._fit
            self._thread = threading.Thread(target=target, args=(spec, placement), daemon=True)
            self._thread.start()

    def _features(self, spec: dict, placement: Placement) -> None:
        """A feature job: one task on the placed node, with its device."""
        from runtime.features import run_feature_task

        [assignment] = placement.assignments
        gpu = placement.kind == "gpu"
        options = {"label_selector": {NODE_ID_LABEL: assignment.node_id}, "num_cpus": 0 if gpu else 1,
                   "num_gpus": 1 if gpu else 0}
        self._phase = "running"
        try:
            self._task = run_feature_task.options(**options).remote(spec["loop_config"], spec["run_dir"], gpu)
            self._outcome = {"metrics": ray.get(self._task)}
            self._phase = "succeeded"
        except BaseException as exc:  # noqa: BLE001 - a SystemExit too: the attempt's outcome, logged by the controller
            stopped = self._attempt_dir is not None and self._attempt_dir.stop_requested()
            self._outcome = {"error": root_cause(exc), "traceback": "".join(traceback.format_exception(exc))}
            self._phase = "stopped" if stopped else "failed"

    def _fit(self, spec: dict, placement: Placement) -> None:
        run_dir = Path(spec["run_dir"])
        try:
            config = {**spec["loop_config"], "run_dir": str(run_dir), "resume_path": spec.get("resume_path"),
                      "resume_sha256": spec.get("resume_sha256")}
            self._phase = "preparing"
            trainer = build_trainer(spec, config, placement, run_dir)
            self._phase = "running"
            result = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - user code's SystemExit too: the outcome, logged by the controller
            self._outcome = {"error": root_cause(exc), "traceback": "".join(traceback.format_exception(exc))}
            self._phase = "stopped" if AttemptDir.at(run_dir).stop_requested() else "failed"
            return
        self._outcome = {"checkpoint": result.checkpoint.path if result.checkpoint else None,
                         "metrics": {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str))}}
        self._phase = "stopped" if AttemptDir.at(run_dir).stop_requested() else "succeeded"

    def status(self) -> dict:
        """{"phase", "error", "traceback", "checkpoint", "metrics"}."""
        return {"phase": self._phase, **self._outcome}

    def stop(self) -> None:
        """Write the stop token: the built-in loop ends at its next epoch boundary (a feature
        task, which has none, is cancelled)."""
        if self._attempt_dir is not None:
            self._attempt_dir.request_stop()
        if self._task is not None:
            ray.cancel(self._task, force=True)
