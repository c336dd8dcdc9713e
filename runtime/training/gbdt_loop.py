"""The per-worker loops of the gradient-boosted tree models, run by Ray Train's `XGBoostTrainer`
and `LightGBMTrainer` (data-parallel: each worker builds histograms on its shard, the trainer's
collective merges them).

Boosting rounds are grouped into `epochs` blocks of ceil(trees / epochs) rounds: after each block
every worker reports, rank 0 writes progress and (every `checkpoint_every` blocks) a checkpoint,
and all workers agree on the stop token. Early stopping watches the validation AUC; the final
model is cut at its best round before it is checkpointed and evaluated. Class weights: the
positive class is weighted negatives / positives when `class_weight` is balanced. A new attempt
continues boosting from the checkpoint's model.

XGBoost's validation metrics are global (each worker evaluates its shard of the validation split
and the collective combines them). LightGBM's are per worker, so each LightGBM worker reads the
whole validation split, and all of them stop at the same round.

Defaults (measured on the three credit sets against scikit-learn's HistGradientBoostingClassifier,
see benchmarks/training.py): XGBoost depth `max_depth` (3), min_child_weight 5, row and column
subsampling 0.8; LightGBM grows leaf-wise to 2 ** (max_depth + 1) - 1 leaves, at least 20 rows a
leaf, bagging 0.8. `config={"xgboost_params": {...}}` or `{"lightgbm_params": {...}}` overrides any
library parameter.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from runtime.training.checkpoints import verify_checkpoint
from runtime.training.worker import WorkerRun, validation_metrics


def rounds_per_epoch(config: dict) -> int:
    return max(1, math.ceil(config["trees"] / config["epochs"]))


class _Blocks:
    """Bookkeeping of round blocks shared by both libraries' callbacks."""

    def __init__(self, run: WorkerRun, config: dict, start_round: int):
        self.run, self.config = run, config
        self.block = rounds_per_epoch(config)
        self.start_epoch = start_round // self.block
        self.started = time.time()
        self.stopped = False

    def end_of_block(self, round_index: int) -> int | None:
        """The epoch that round `round_index` (0-based, counted over all attempts) completes."""
        return (round_index + 1) // self.block - 1 if (round_index + 1) % self.block == 0 else None

    def report(self, epoch: int, rounds: int, val: dict, save_model) -> None:
        """Progress line, checkpoint (rank 0) and the Ray Train report (every rank)."""
        metrics = {"epoch": epoch, "steps": rounds, "trees": (epoch + 1) * self.block, "world_size": self.run.world,
                   "resumed_from_epoch": self.start_epoch, "epoch_seconds": time.time() - self.started, **val}
        checkpoint = None
        if self.run.rank == 0:
            if (epoch + 1) % self.config["checkpoint_every"] == 0:
                directory = self.run.new_checkpoint()
                save_model(directory)
                checkpoint = self.run.seal(directory, epoch, trees=(epoch + 1) * self.block)
            self.run.log_epoch(metrics, checkpoint is not None)
        self.run.report(metrics, checkpoint)
        self.started = time.time()
        if self.config.get("seconds_per_epoch"):
            time.sleep(self.config["seconds_per_epoch"])


def _final(run: WorkerRun, blocks: _Blocks, epoch: int, val: dict, save_model, predict, trees: int) -> None:
    """Checkpoint the final (best-round) model, evaluate it on the test split, report."""
    run.record_memory()
    checkpoint = None
    metrics = {"epoch": epoch, "trees": trees, "world_size": run.world, **val}
    if run.rank == 0:
        directory = run.new_checkpoint()
        save_model(directory)
        checkpoint = run.seal(directory, epoch, trees=trees, final=True)
        metrics.update({f"test_{k}": v for k, v in run.evaluate(predict).items() if isinstance(v, float)})
    run.report(metrics, checkpoint)


def xgboost_train_loop(config: dict) -> None:
    """Train an XGBoost model (binary:logistic, hist) on the job's prepared data."""
    import xgboost
    from xgboost import collective

    from runtime.training.devices import xgboost_device

    run = WorkerRun(config)
    x, y = run.shard("train")
    x_val, y_val = run.shard("val")
    train = xgboost.QuantileDMatrix(x, label=y)
    val = xgboost.QuantileDMatrix(x_val, label=y_val, ref=train)
    del x  # the quantized matrix is what training needs
    device = xgboost_device(config["device_kind"])
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist",
              "device": device, "max_depth": config["max_depth"], "eta": config["learning_rate"],
              "min_child_weight": 5, "subsample": 0.8, "colsample_bytree": 0.8,
              "scale_pos_weight": run.positive_weight, "seed": config["seed"], "nthread": config.get("threads") or 0,
              **(config.get("xgboost_params") or {})}
    booster = None
    if config.get("resume_path"):
        booster = xgboost.Booster(model_file=str(verify_checkpoint(config["resume_path"], config["resume_sha256"])
                                                 / "model.ubj"))
    start_round = booster.num_boosted_rounds() if booster is not None else 0
    blocks = _Blocks(run, config, start_round)
    run.record_worker(device, blocks.start_epoch)

    class Blocks(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            round_index = start_round + epoch
            done = blocks.end_of_block(round_index)
            if done is None:
                return False
            val = {"val_auc": float(evals_log["val"]["auc"][-1]), "val_log_loss": float(evals_log["val"]["logloss"][-1])}
            blocks.report(done, blocks.block, val, lambda d: model.save_model(str(Path(d) / "model.ubj")))
            stop = collective.allreduce(np.array([run.stop_flag()]), collective.Op.MAX)[0] if run.world > 1 \
                else run.stop_flag()
            blocks.stopped = bool(stop)
            return blocks.stopped

    remaining = config["trees"] - start_round
    history: dict = {}
    if remaining > 0:
        booster = xgboost.train(params, train, num_boost_round=remaining, evals=[(val, "val")], xgb_model=booster,
                                evals_result=history, verbose_eval=False,
                                callbacks=[xgboost.callback.EarlyStopping(config["early_stopping_rounds"],
                                                                          metric_name="auc", maximize=True,
                                                                          data_name="val"), Blocks()])
    if blocks.stopped:
        return
    best = int(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1)
    final = booster[: best + 1]
    scores = final.inplace_predict(x_val) if len(x_val) else np.zeros(0)
    val_metrics = {}
    if run.world == 1 and len(y_val) and len(set(y_val.tolist())) == 2:
        val_metrics = validation_metrics(y_val, scores)
    elif history:
        val_metrics = {"val_auc": float(history["val"]["auc"][best - start_round])} if best >= start_round else {}
    _final(run, blocks, best // blocks.block, val_metrics, lambda d: final.save_model(str(Path(d) / "model.ubj")),
           lambda xs: final.inplace_predict(xs), best + 1)


def lightgbm_train_loop(config: dict) -> None:
    """Train a LightGBM model (binary, data-parallel across workers) on the job's prepared data."""
    import lightgbm
    import ray.train.lightgbm

    from runtime.training.devices import lightgbm_device

    run = WorkerRun(config)
    x, y = run.shard("train")
    x_val, y_val = run.shard("val")
    device = lightgbm_device(config["device_kind"])
    params = {"objective": "binary", "metric": ["auc", "binary_logloss"], "learning_rate": config["learning_rate"],
              "num_leaves": min(255, 2 ** (config["max_depth"] + 1) - 1), "min_data_in_leaf": 20,
              "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8,
              "scale_pos_weight": run.positive_weight, "seed": config["seed"], "deterministic": True,
              "verbose": -1, "device_type": device, "num_threads": config.get("threads") or 0,
              **(config.get("lightgbm_params") or {})}
    if run.world > 1:
        params.update(tree_learner="data", **ray.train.lightgbm.get_network_params())
    train = lightgbm.Dataset(x, label=y, free_raw_data=True)
    val = lightgbm.Dataset(x_val, label=y_val, reference=train)
    init = None
    if config.get("resume_path"):
        init = lightgbm.Booster(model_file=str(verify_checkpoint(config["resume_path"], config["resume_sha256"])
                                               / "model.txt"))
    start_round = init.current_iteration() if init is not None else 0
    blocks = _Blocks(run, config, start_round)
    run.record_worker(device, blocks.start_epoch)

    def on_round(env) -> None:
        round_index = env.iteration  # counts the init model's rounds too
        done = blocks.end_of_block(round_index)
        if done is None:
            return
        results = {(name, metric): value for name, metric, value, _ in env.evaluation_result_list}
        val_metrics = {"val_auc": float(results[("val", "auc")]), "val_log_loss": float(results[("val", "binary_logloss")])}
        blocks.report(done, blocks.block, val_metrics,
                      lambda d: Path(d, "model.txt").write_text(env.model.model_to_string()))
        if run.stop_flag():
            blocks.stopped = True
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    remaining = config["trees"] - start_round
    booster = init
    if remaining > 0:
        booster = lightgbm.train(params, train, num_boost_round=remaining, valid_sets=[val], valid_names=["val"],
                                 init_model=init, keep_training_booster=True,
                                 callbacks=[lightgbm.early_stopping(config["early_stopping_rounds"], first_metric_only=True,
                                                                    verbose=False), on_round])
    if blocks.stopped:
        return
    best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    final = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    val_metrics = validation_metrics(y_val, final.predict(x_val)) if len(set(y_val.tolist())) == 2 else {}
    _final(run, blocks, (best - 1) // blocks.block, val_metrics,
           lambda d: Path(d, "model.txt").write_text(final.model_to_string()), final.predict, best)
