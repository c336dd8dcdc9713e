"""The per-worker loop of the torch models (logistic regression, the fraud MLP).

Each worker streams its shard of the training split from Ray Data (`get_dataset_shard("train")`,
equal row counts per worker, a bounded local shuffle buffer), trains with DistributedDataParallel
over the placement's collective (gloo, NCCL or HCCL) on the device Ray gave it, and rank 0
validates each epoch and writes a checkpoint every `checkpoint_every` epochs. A new attempt
resumes from the checkpoint the controller hands it, after checking its sha256; checkpoints are
loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import time

import numpy as np

from runtime.training.checkpoints import load_torch_state
from runtime.training.models import build_model
from runtime.training.worker import WorkerRun, validation_metrics

SHUFFLE_BUFFER_ROWS = 10_000
CACHE_ROWS = 2_000_000  # a shard (or the validation split) up to this many rows is kept after its first pass


class EpochBatches:
    """A worker's training batches, epoch after epoch: streamed from its Ray Data shard (a bounded
    local shuffle buffer) the first time; a shard of at most CACHE_ROWS rows is kept in memory then
    and reshuffled each epoch (small data would otherwise pay a Ray Data pipeline start per epoch),
    a larger one is streamed again."""

    def __init__(self, shard, batch_size: int, device, seed: int):
        self.shard, self.batch_size, self.device, self.seed = shard, batch_size, device, seed
        self.cached = None

    def epoch(self, epoch: int):
        import torch

        if self.cached is not None:
            x, y = self.cached
            order = torch.from_numpy(np.random.default_rng(self.seed + epoch).permutation(len(x)))
            for i in range(0, len(x), self.batch_size):
                index = order[i:i + self.batch_size]
                yield x[index].to(self.device), y[index].to(self.device)
            return
        kept, rows = [], 0
        for batch in self.shard.iter_torch_batches(batch_size=self.batch_size, dtypes=torch.float32,
                                                   local_shuffle_buffer_size=SHUFFLE_BUFFER_ROWS,
                                                   local_shuffle_seed=self.seed + epoch):
            if kept is not None:
                rows += len(batch["y"])
                if rows <= CACHE_ROWS:
                    kept.append((batch["x"], batch["y"]))
                else:
                    kept = None
            yield batch["x"].to(self.device), batch["y"].to(self.device)
        if kept:
            self.cached = (torch.cat([x for x, _ in kept]), torch.cat([y for _, y in kept]))


def _stop_requested(run: WorkerRun, device) -> bool:
    """Whether the controller asked this attempt to stop; all ranks agree (one all-reduce)."""
    import torch

    flag = torch.tensor([run.stop_flag()], device=device)
    if run.world > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def _scores(model, x: np.ndarray, device) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x).to(device))).cpu().numpy()


def torch_train_loop(config: dict) -> None:
    """Train config["model"] on the job's prepared data; see the module docstring."""
    import ray.train
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from runtime.training.devices import worker_torch_device

    run = WorkerRun(config)
    device = worker_torch_device(config["device_kind"])
    torch.manual_seed(config["seed"])
    model = build_model(config["model"], run.features, config["hidden"]).to(device)
    state = load_torch_state(config["resume_path"], config["resume_sha256"]) if config.get("resume_path") else None
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        start_epoch = state["epoch"] + 1
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if run.world > 1 else model
    optimiser = torch.optim.Adam(ddp.parameters(), lr=config["learning_rate"])
    if state is not None:
        optimiser.load_state_dict(state["optimiser"])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(run.positive_weight, device=device))
    run.record_worker(str(device), start_epoch)
    batches = EpochBatches(ray.train.get_dataset_shard("train"), config["batch_size"], device, config["seed"])
    validation = None
    for epoch in range(start_epoch, config["epochs"]):
        if _stop_requested(run, device):
            return  # the run ends cleanly: Ray Train releases the workers and their placement group
        started = time.time()
        ddp.train()
        total, steps = 0.0, 0
        for xb, yb in batches.epoch(epoch):
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(xb), yb)
            loss.backward()
            optimiser.step()
            total += float(loss)
            steps += 1
        metrics = {"epoch": epoch, "train_loss": total / max(1, steps), "steps": steps, "world_size": run.world,
                   "resumed_from_epoch": start_epoch, "epoch_seconds": time.time() - started}
        checkpoint = None
        last = epoch == config["epochs"] - 1
        if run.rank == 0:
            x_val, y_val = validation or run.shard("val")
            if len(y_val) <= CACHE_ROWS:
                validation = (x_val, y_val)
            metrics.update(validation_metrics(y_val, _scores(model, x_val, device)))
            if (epoch + 1) % config["checkpoint_every"] == 0 or last:
                directory = run.new_checkpoint()
                torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                            "features": run.prepared.preprocessing.feature_names, "model_name": config["model"],
                            "hidden": list(config["hidden"])}, directory / "state.pt")
                checkpoint = run.seal(directory, epoch)
            if last:
                run.evaluate(lambda x: _scores(model, x, device))
            run.log_epoch(metrics, checkpoint is not None)
        if last:
            run.record_memory()
        run.report(metrics, checkpoint)
        if config.get("seconds_per_epoch"):  # slows the loop down for recovery tests and demos
            time.sleep(config["seconds_per_epoch"])
