"""The per-worker training loop of the built-in models (logistic regression, fraud MLP).

Runs inside Ray Train (TorchTrainer): each worker trains on an equal shard of the training split
with DistributedDataParallel (gloo on CPU, NCCL on CUDA GPUs), rank 0 evaluates on the validation
split, writes a checkpoint every `checkpoint_every` epochs (with `meta.json`: its epoch and the
sha256 of `state.pt`, which the controller records in the store) and appends one JSON line per
epoch to `progress.jsonl` in the attempt's run directory. A new attempt resumes from the
checkpoint the controller hands it, after checking its sha256; checkpoints are loaded with
`torch.load(weights_only=True)` (tensors and plain values only).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from runtime.training.attempt import STOP_FILE

CHECKPOINT_META = "meta.json"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_state(path: str | Path, sha256: str | None = None) -> dict:
    """A checkpoint's `state.pt` (tensors and plain values only), after checking its sha256 when
    one is given. ValueError naming the file when the bytes differ from the recorded ones."""
    file = Path(path) / "state.pt"
    if sha256 is not None and file_sha256(file) != sha256:
        raise ValueError(f"checkpoint: {file} does not match the sha256 recorded when it was written")
    return torch.load(file, weights_only=True)


def _stop_requested(flag: Path, world: int) -> bool:
    """Whether the controller asked this attempt to stop; all ranks agree (one all-reduce), so no
    rank is left waiting in a collective."""
    requested = torch.tensor([1.0 if flag.exists() else 0.0])
    if world > 1:
        torch.distributed.all_reduce(requested, op=torch.distributed.ReduceOp.MAX)
    return bool(requested.item())


def build_model(model: str, in_features: int, hidden: list[int]) -> torch.nn.Module:
    """The built-in model by name; outputs one logit per row."""
    from kernels.mlp import FraudMLP

    if model == "mlp":
        return FraudMLP(in_features, hidden)
    if model == "logistic":
        return torch.nn.Sequential(torch.nn.Linear(in_features, 1), torch.nn.Flatten(0))
    raise ValueError(f"model: unknown built-in model {model!r}")


def _device() -> torch.device:
    if torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("",):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _load_checkpoint(config: dict):
    if config.get("resume_path"):
        return load_state(config["resume_path"], config.get("resume_sha256"))
    return None


def builtin_train_loop(config: dict) -> None:
    """Train config["model"] on config["dataset"]; see the module docstring."""
    import ray
    import ray.train
    from sklearn.metrics import log_loss, roc_auc_score
    from torch.nn.parallel import DistributedDataParallel

    from runtime.datasets import prepare_splits

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    splits = prepare_splits(config["dataset"], config["label"], config["categorical"],
                            config["validation_fraction"], config["test_fraction"], config["seed"])
    usable = len(splits.x_train) // world * world  # equal shards keep DDP's collectives in step
    x = torch.from_numpy(splits.x_train[:usable][rank::world])
    y = torch.from_numpy(splits.y_train[:usable][rank::world])
    device = _device()
    model = build_model(config["model"], x.shape[1], config["hidden"]).to(device)
    state = _load_checkpoint(config)
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        start_epoch = state["epoch"] + 1
    ddp = DistributedDataParallel(model) if world > 1 else model
    optimiser = torch.optim.Adam(ddp.parameters(), lr=config["learning_rate"])
    if state is not None:
        optimiser.load_state_dict(state["optimiser"])
    pos_weight = torch.tensor(splits.positive_weight if config["class_weight"] == "balanced" else 1.0, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    batch = config["batch_size"]
    run_dir = Path(config["run_dir"])
    progress = run_dir / "progress.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "workers.jsonl").open("a") as f:  # the devices actually used, for provenance
        runtime_ctx = ray.get_runtime_context()
        f.write(json.dumps({"rank": rank, "world_size": world, "node_id": runtime_ctx.get_node_id(),
                            "device": str(device), "resumed_from_epoch": start_epoch, "started": time.time()}) + "\n")
    for epoch in range(start_epoch, config["epochs"]):
        if _stop_requested(run_dir / STOP_FILE, world):
            return  # the run ends cleanly: Ray Train releases the workers and their placement group
        started = time.time()
        order = torch.from_numpy(np.random.default_rng(config["seed"] + epoch).permutation(len(x)))
        ddp.train()
        total, steps = 0.0, 0
        for i in range(0, len(x), batch):
            index = order[i:i + batch]
            xb, yb = x[index].to(device), y[index].to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(xb), yb)
            loss.backward()
            optimiser.step()
            total += float(loss)
            steps += 1
        metrics = {"epoch": epoch, "train_loss": total / max(1, steps), "steps": steps, "world_size": world,
                   "resumed_from_epoch": start_epoch, "epoch_seconds": time.time() - started}
        checkpoint = None
        last = epoch == config["epochs"] - 1
        if rank == 0:
            model.eval()
            with torch.no_grad():
                scores = torch.sigmoid(model(torch.from_numpy(splits.x_val).to(device))).cpu().numpy()
            metrics["val_auc"] = float(roc_auc_score(splits.y_val, scores))
            metrics["val_log_loss"] = float(log_loss(splits.y_val, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
            if (epoch + 1) % config["checkpoint_every"] == 0 or last:
                directory = tempfile.mkdtemp(prefix="suanli-ckpt-")
                torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                            "features": splits.feature_names, "mean": splits.mean.tolist(),
                            "scale": splits.scale.tolist(), "model_name": config["model"],
                            "hidden": list(config["hidden"])}, Path(directory) / "state.pt")
                (Path(directory) / CHECKPOINT_META).write_text(json.dumps(
                    {"epoch": epoch, "sha256": file_sha256(Path(directory) / "state.pt")}))
                checkpoint = ray.train.Checkpoint.from_directory(directory)
            progress.parent.mkdir(parents=True, exist_ok=True)
            with progress.open("a") as f:
                f.write(json.dumps({**metrics, "time": time.time(), "checkpointed": checkpoint is not None}) + "\n")
        ray.train.report(metrics, checkpoint=checkpoint)
        if config.get("seconds_per_epoch"):  # slows the loop down for recovery tests and demos
            time.sleep(config["seconds_per_epoch"])
