"""Running one job's training on Ray Train where its placement says, from a Ray task.

The task (no CPU of its own) builds a TorchTrainer whose workers are held to the placement's pool
(cluster, tier, site, accelerator model) by Ray label selectors, with the placement's devices per
worker, checkpoints under `storage_path/<job id>`, and `FailureConfig(max_failures)` so a lost
worker node restarts the group from the latest checkpoint on the pool's remaining nodes.
"""

from __future__ import annotations

from pathlib import Path

import ray


def latest_checkpoint(storage_path: str, run_name: str) -> str | None:
    """The newest checkpoint directory Ray Train wrote for `run_name` (None when there is none)."""
    run = Path(storage_path) / run_name
    found = sorted((p for p in run.glob("checkpoint_*") if (p / "state.pt").exists()), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


POOL_LABELS = ("cluster", "tier", "site")
ACCELERATOR_LABELS = ("accelerator", "accelerator-model")


def pool_selector(kind: str, node_labels: dict) -> dict:
    """Ray label selector for the placement's pool: the nodes of the same cluster, tier and site
    (and accelerator model, for accelerator work). Workers are pinned to the pool, not to single
    nodes, so that after a node is lost Ray Train can restart them on the pool's other nodes."""
    keys = POOL_LABELS + (ACCELERATOR_LABELS if kind != "cpu" else ())
    return {k: node_labels[k] for k in keys if k in node_labels}


def scaling_for(placement: dict, selector: dict):
    """ScalingConfig from a placement: its worker count and devices per worker, in its pool."""
    from ray.train import ScalingConfig

    from runtime.placement_to_ray import ray_resource

    workers = sum(a["workers"] for a in placement["assignments"])
    per_worker = placement["assignments"][0]["devices_per_worker"]
    kind = placement["kind"]
    return ScalingConfig(num_workers=workers, use_gpu=kind == "gpu",
                         resources_per_worker={ray_resource(kind): float(per_worker)},
                         label_selector=selector or None)


@ray.remote(num_cpus=0, max_retries=0)
def run_training(job_id: str, loop_config: dict, train_fn, placement: dict, selector: dict, storage_path: str,
                 max_failures: int, resume_path: str | None) -> dict:
    """Fit the job; {"checkpoint", "metrics", "error"} from Ray Train's result."""
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from runtime.training.loop import builtin_train_loop

    config = {**loop_config, "storage_path": storage_path, "run_name": job_id, "resume_path": resume_path}
    trainer = TorchTrainer(
        train_fn or builtin_train_loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if placement["kind"] == "gpu" and torch.cuda.is_available() else "gloo"),
        scaling_config=scaling_for(placement, selector),
        run_config=RunConfig(name=job_id, storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )  # a restart resumes through config["resume_path"] (Ray Train v2 refuses resume_from_checkpoint)
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - a failed fit is the job's outcome, reported to the controller
        import traceback

        return {"checkpoint": None, "metrics": {}, "error": "".join(traceback.format_exception(exc))}
    return {"checkpoint": result.checkpoint.path if result.checkpoint else None, "metrics": dict(result.metrics or {}),
            "error": None}
