"""Training runtime figures, each measured in one run:

- scaling: samples/s of the fraud MLP with 1 and 2 Ray Train workers on this 2-core machine
  (generated payment transactions; samples/s = rows x epochs / summed epoch time, start-up excluded);
- recovery: on an emulated 3-node cluster, seconds from a worker node's loss to the next epoch (the
  controller gets a new placement from the scheduler and launches a new attempt from the last
  checkpoint), and the epochs and steps repeated;
- quality: test AUC of suanli's logistic regression, MLP, XGBoost and LightGBM beside
  scikit-learn's LogisticRegression and HistGradientBoostingClassifier fitted on the same training
  rows and features (the job's own split plan and preprocessing), for each set in
  ../shared/data/credit;
- gbdt: XGBoost training throughput (training rows x trees per second of boosting) with 1 and 2
  workers on generated payment transactions;
- memory: peak resident memory of each XGBoost worker training on a generated dataset of
  `--memory-rows` (5 million by default) rows with 2 workers, beside one process that loads and
  preprocesses the same data whole (what every worker did before data came through Ray Data).

Jobs go through a `suanli server` (the local one for scaling and quality; one joined to the
emulated cluster for recovery). The control plane's own overhead is in control_plane.py.

    python benchmarks/training.py --json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from benchmarks._common import SHARED_DATA, emit  # noqa: E402

CREDIT = {
    "german_credit.csv": ("bad", ["checking_account_status", "credit_history", "purpose", "savings_account_bonds",
                                  "present_employment_since", "personal_status_sex", "other_debtors_guarantors",
                                  "property", "other_installment_plans", "housing", "job", "telephone",
                                  "foreign_worker"]),
    "australian_credit.csv": ("class", []),
    "ulb_creditcard_fraud_sample.csv": ("Class", []),
}


def _job(client, **kw):
    from runtime import TrainingJob

    job = client.submit(TrainingJob(**kw))
    state = job.wait(timeout=1200)
    if state.value != "SUCCEEDED":
        raise RuntimeError(f"{job.id}: {state.value}\n{job.logs()}")
    return job


def scaling_and_quality(rows: int) -> tuple[dict, dict]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from runtime import Client
    from runtime.data import read_frame
    from runtime.data.ray_io import PreparedData, split_frame
    from runtime.datagen import write_transactions
    from runtime.server.local import stop_local_server

    state = Path(tempfile.mkdtemp(prefix="suanli-bench-"))
    data = write_transactions(state / "tx.csv", rows=rows)
    scaling = {}
    try:
        client = Client(state_dir=state / "store")
    except Exception:
        stop_local_server(state / "store")
        raise
    with client:
        for workers in (1, 2):
            job = _job(client, name=f"scale-{workers}", dataset=str(data), label="is_fraud",
                       categorical=["channel", "device"], workers=workers, device="cpu", epochs=3, batch_size=512)
            epochs = job.result().provenance["modelling"]["epochs"]
            seconds = sum(e["epoch_seconds"] for e in epochs)
            trained = sum(e["steps"] for e in epochs) * 512 * workers
            scaling[f"samples_per_s_{workers}_workers"] = round(trained / seconds)
        scaling["ratio_2_over_1"] = round(scaling["samples_per_s_2_workers"] / scaling["samples_per_s_1_workers"], 2)
        for workers in (1, 2):
            job = _job(client, name=f"gbdt-{workers}", model="xgboost", dataset=str(data), label="is_fraud",
                       categorical=["channel", "device"], workers=workers, device="cpu", trees=200, epochs=4,
                       early_stopping_rounds=10_000)
            result = job.result()
            epochs = result.provenance["modelling"]["epochs"]
            train_rows = round(rows * 0.6)
            scaling[f"gbdt_row_trees_per_s_{workers}_workers"] = round(
                train_rows * sum(e["steps"] for e in epochs) / sum(e["epoch_seconds"] for e in epochs))
        scaling["gbdt_ratio_2_over_1"] = round(scaling["gbdt_row_trees_per_s_2_workers"]
                                               / scaling["gbdt_row_trees_per_s_1_workers"], 2)
        quality = {}
        for name, (label, categorical) in CREDIT.items():
            path = SHARED_DATA / "credit" / name
            if not path.exists():
                quality[name] = "skipped: ../shared/data/credit is absent"
                continue
            row = {}
            for model in ("logistic", "mlp", "xgboost", "lightgbm"):
                extra = {"epochs": 30, "batch_size": 64, "hidden": [64, 32]} if model in ("logistic", "mlp") else {}
                job = _job(client, name=f"q-{model}-{name.split('_')[0]}", model=model, dataset=str(path),
                           label=label, categorical=categorical, workers=1, device="cpu", **extra)
                row[f"suanli_{model}_auc"] = round(job.result().metrics["auc"], 4)
                checkpoint = job.result().checkpoint
            prepared = PreparedData.load(checkpoint)  # the split and preprocessing the jobs used
            parts = split_frame(read_frame(path), prepared.plan)
            x = {k: prepared.preprocessing.transform(v) for k, v in parts.items()}
            y = {k: v[label].to_numpy() for k, v in parts.items()}
            for key, reference in (("sklearn_logistic_auc", LogisticRegression(max_iter=5000)),
                                   ("sklearn_histgb_auc", HistGradientBoostingClassifier(random_state=0))):
                reference.fit(x["train"], y["train"])
                row[key] = round(float(roc_auc_score(y["test"], reference.predict_proba(x["test"])[:, 1])), 4)
            quality[name] = row
    stop_local_server(state / "store")
    return scaling, quality


WHOLE_LOAD = """
import json, resource, sys
from runtime.data import read_frame
from runtime.data.ray_io import PreparedData
frame = read_frame(sys.argv[1])
x = PreparedData.load(sys.argv[2]).preprocessing.transform(frame)
print(json.dumps({"rows": len(frame), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory(rows: int) -> dict:
    """Peak RSS per XGBoost worker (2 workers) on `rows` generated rows vs one whole load."""
    import json
    import subprocess

    from runtime import Client
    from runtime.datagen import generate_transactions
    from runtime.server.local import stop_local_server

    state = Path(tempfile.mkdtemp(prefix="suanli-memory-"))
    data = state / "tx.parquet"
    generate_transactions(rows=rows, seed=1).to_parquet(data, row_group_size=250_000)
    try:
        with Client(state_dir=state / "store") as client:
            job = _job(client, name="memory", model="xgboost", dataset=str(data), label="is_fraud",
                       categorical=["channel", "device"], workers=2, device="cpu", trees=40, epochs=2,
                       early_stopping_rounds=10_000)
            result = job.result()
            from runtime.rundir import AttemptDir

            attempt = Path(result.provenance_path).parent / f"attempt-{job.info()['attempts']}"
            workers = AttemptDir.at(attempt).memory()
            whole = json.loads(subprocess.run([sys.executable, "-c", WHOLE_LOAD, str(data), result.checkpoint],
                                              capture_output=True, text=True, check=True,
                                              cwd=Path(__file__).resolve().parent.parent).stdout)
    finally:
        stop_local_server(state / "store")
    per_worker = max(w["peak_rss_mb"] for w in workers)
    return {"rows": rows, "bytes_on_disk": data.stat().st_size, "workers": 2,
            "peak_rss_mb_per_worker": sorted(w["peak_rss_mb"] for w in workers),
            "peak_rss_mb_whole_load": round(whole["peak_rss_mb"], 1),
            "worker_over_whole": round(per_worker / whole["peak_rss_mb"], 2), "test_auc": round(result.metrics["auc"], 4)}


def recovery() -> dict:
    import ray

    from cluster.emulation import EmulatedCluster, parse_emulation
    from runtime import Client, TrainingJob
    from runtime.server.local import start_server

    path = SHARED_DATA / "credit" / "australian_credit.csv"
    spec = parse_emulation({"name": "bench", "nodes": [{"tier": "center", "site": "dc1", "count": 3, "cpu": 1}]})
    state = Path(tempfile.mkdtemp(prefix="suanli-recovery-"))
    with EmulatedCluster(spec) as emulated:
        server, url = start_server(state, "--ray-address", emulated.address)
        try:
            with Client(address=url, state_dir=state) as client:
                job = client.submit(TrainingJob(name="recover", dataset=str(path), label="class", workers=2,
                                                device="cpu", epochs=8, hidden=[32], checkpoint_every=2,
                                                config={"seconds_per_epoch": 3}))
                while (job.info()["progress"] or {}).get("epochs_done", 0) < 3:
                    time.sleep(0.2)
                head = ray.get_runtime_context().get_node_id()
                victim = next(a["node_id"] for a in job.info()["placement"]["assignments"] if a["node_id"] != head)
                killed = time.time()
                emulated.remove_node(victim)
                job.wait(timeout=600)
                result = job.result()
                lines = result.provenance["modelling"]["epochs"]
                after = [line for line in lines if line["time"] > killed]
                rec = result.provenance["modelling"]["recovery"]
                return {"seconds_to_next_epoch": round(after[0]["time"] - killed, 1),
                        "seconds_to_next_epoch_includes_one_epoch_of": after[0]["epoch_seconds"] + 3,
                        "resumed_from_epoch": after[0]["resumed_from_epoch"], "epochs_repeated": rec["epochs_repeated"],
                        "steps_repeated": rec["steps_repeated"], "checkpoint_every_epochs": 2,
                        "attempts": job.info()["attempts"], "state": job.status().value}
        finally:
            server.terminate()
            server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--memory-rows", type=int, default=5_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scaling, quality = scaling_and_quality(args.rows)
    mem = memory(args.memory_rows)
    rec = recovery()
    result = {"scaling": scaling, "recovery": rec, "quality": quality, "memory": mem}
    auc = "; ".join(f"{k.split('_')[0]}: LR {v['suanli_logistic_auc']}, MLP {v['suanli_mlp_auc']}, XGBoost "
                    f"{v['suanli_xgboost_auc']}, LightGBM {v['suanli_lightgbm_auc']} vs sklearn LR "
                    f"{v['sklearn_logistic_auc']}, HistGB {v['sklearn_histgb_auc']}"
                    for k, v in quality.items() if isinstance(v, dict))
    markdown = (f"| training | 2/1 workers: MLP {scaling['ratio_2_over_1']}x, XGBoost {scaling['gbdt_ratio_2_over_1']}x | "
                f"recovery {rec['seconds_to_next_epoch']} s to next epoch, {rec['epochs_repeated']} epoch(s) repeated | "
                f"{mem['rows']:,} rows: peak {max(mem['peak_rss_mb_per_worker']):.0f} MB per worker vs "
                f"{mem['peak_rss_mb_whole_load']:.0f} MB whole | AUC {auc} |")
    emit("training", result, markdown, args.json)


if __name__ == "__main__":
    main()
