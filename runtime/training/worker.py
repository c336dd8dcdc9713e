"""What every built-in training loop does the same way inside a Ray Train worker: read its shard,
record where it ran, write progress and checkpoints, honour the stop token, and (rank 0, at the
end) evaluate the final model on the test split, so nothing reads the whole dataset outside the
cluster."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.data.ray_io import PreparedData
from runtime.rundir import AttemptDir
from runtime.training.checkpoints import write_meta


class WorkerRun:
    """One worker's view of its attempt (see the module docstring)."""

    def __init__(self, config: dict):
        import ray.train

        ctx = ray.train.get_context()
        self.config = config
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.attempt_dir = AttemptDir.at(config["run_dir"])
        self.attempt_dir.create()
        self.prepared = PreparedData.load(config["prepared_dir"])
        self.features = len(self.prepared.preprocessing.feature_names)

    @property
    def positive_weight(self) -> float:
        """negatives / positives among the training rows (1 unless class_weight is balanced)."""
        if self.config["class_weight"] != "balanced":
            return 1.0
        counts = self.prepared.plan.counts["train"]
        return counts["0"] / max(1, counts["1"])

    def record_worker(self, device: str, resumed_from_epoch: int) -> None:
        import ray

        self.attempt_dir.append_worker({"rank": self.rank, "world_size": self.world,  # the devices used, for provenance
                                        "node_id": ray.get_runtime_context().get_node_id(), "device": device,
                                        "resumed_from_epoch": resumed_from_epoch, "started": time.time()})

    def stop_flag(self) -> float:
        """1.0 when the controller wrote the stop token (callers agree on it over their collective)."""
        return 1.0 if self.attempt_dir.stop_requested() else 0.0

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """This worker's rows of dataset `name` ("train", "val", "test") as (x, y) arrays."""
        import ray.train

        xs, ys = [], []
        for batch in ray.train.get_dataset_shard(name).iter_batches(batch_format="numpy", batch_size=65536):
            xs.append(batch["x"])
            ys.append(batch["y"])
        if not xs:
            return np.zeros((0, self.features), dtype=np.float32), np.zeros(0, dtype=np.float32)
        return np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(ys)

    def new_checkpoint(self) -> Path:
        """An empty checkpoint directory holding the job's split plan and preprocessing."""
        directory = Path(tempfile.mkdtemp(prefix="suanli-ckpt-"))
        self.prepared.save(directory)
        return directory

    def seal(self, directory: Path, epoch: int, **extra):
        """meta.json for a filled checkpoint directory; the Ray Train Checkpoint to report."""
        import ray.train

        write_meta(directory, epoch, self.config["model"], **extra)
        return ray.train.Checkpoint.from_directory(str(directory))

    def report(self, metrics: dict, checkpoint=None) -> None:
        """Ray Train's report (every rank calls it, once per epoch); a checkpoint's temporary local
        directory is deleted once Ray Train has persisted it, so a long run does not fill /tmp."""
        import ray.train

        ray.train.report(metrics, checkpoint=checkpoint, delete_local_checkpoint_after_upload=True)

    def record_memory(self) -> None:
        """Record this worker's peak resident memory (every rank, at the end)."""
        import resource

        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.attempt_dir.append_memory({"rank": self.rank, "peak_rss_mb": round(peak_mb, 1)})

    def log_epoch(self, metrics: dict, checkpointed: bool) -> None:
        self.attempt_dir.append_progress({**metrics, "time": time.time(), "checkpointed": checkpointed})

    def evaluate(self, predict: Callable[[np.ndarray], np.ndarray]) -> dict:
        """Rank 0: the final model's metrics on the test split, recorded in the attempt directory."""
        from runtime.metrics import binary_metrics

        x, y = self.shard("test")
        metrics = binary_metrics(y, predict(x), funds_related=self.config.get("funds_related", True))
        self.attempt_dir.write_evaluation(metrics)
        return metrics


def validation_metrics(y: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    return {"val_auc": float(roc_auc_score(y, scores)),
            "val_log_loss": float(log_loss(y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))}
