"""Training runtime figures, each measured in one run:

- scaling: samples/s of the fraud MLP with 1 and 2 Ray Train workers on this 2-core machine
  (generated payment transactions; samples/s = rows x epochs / summed epoch time, start-up excluded);
- recovery: on an emulated 3-node cluster, seconds from a worker node's loss to the next epoch (the
  controller gets a new placement from the scheduler and launches a new attempt from the last
  checkpoint), and the epochs and steps repeated;
- quality: test AUC of suanli's logistic regression and MLP against scikit-learn's
  LogisticRegression on the same split, for each dataset in ../shared/data/credit.

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
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from runtime import Client
    from runtime.datagen import write_transactions
    from runtime.datasets import prepare_splits
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
        quality = {}
        for name, (label, categorical) in CREDIT.items():
            path = SHARED_DATA / "credit" / name
            if not path.exists():
                quality[name] = "skipped: ../shared/data/credit is absent"
                continue
            row = {}
            for model in ("logistic", "mlp"):
                job = _job(client, name=f"q-{model}-{name.split('_')[0]}", model=model, dataset=str(path),
                           label=label, categorical=categorical, workers=1, device="cpu", epochs=30,
                           batch_size=64, hidden=[64, 32])
                row[f"suanli_{model}_auc"] = round(job.result().metrics["auc"], 4)
            splits = prepare_splits(path, label, categorical, 0.2, 0.2, seed=0)
            baseline = LogisticRegression(max_iter=5000).fit(np.vstack([splits.x_train, splits.x_val]),
                                                              np.concatenate([splits.y_train, splits.y_val]))
            row["sklearn_logistic_auc"] = round(float(roc_auc_score(splits.y_test,
                                                                     baseline.predict_proba(splits.x_test)[:, 1])), 4)
            quality[name] = row
    stop_local_server(state / "store")
    return scaling, quality


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scaling, quality = scaling_and_quality(args.rows)
    rec = recovery()
    result = {"scaling": scaling, "recovery": rec, "quality": quality}
    auc = "; ".join(f"{k.split('_')[0]}: suanli MLP {v['suanli_mlp_auc']}, LR {v['suanli_logistic_auc']} vs "
                    f"sklearn {v['sklearn_logistic_auc']}" for k, v in quality.items() if isinstance(v, dict))
    markdown = (f"| training | 2 workers / 1 worker samples/s {scaling['ratio_2_over_1']}x | "
                f"recovery {rec['seconds_to_next_epoch']} s to next epoch, {rec['epochs_repeated']} epoch(s) repeated | "
                f"AUC {auc} |")
    emit("training", result, markdown, args.json)


if __name__ == "__main__":
    main()
