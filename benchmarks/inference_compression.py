"""Inference speed and compression on a real credit dataset, in one run, one thread each:

the teacher (the built-in MLP exactly as training produces it by default) in fp32 PyTorch eager,
against the compression pipeline's candidates in ONNX Runtime (the distilled student in fp32, the
student quantized to int8 dynamically and statically, the pruned teacher): single-row latency
p50/p99, rows/s at batch 1 and 256, artifact size, AUC. The pipeline picks the fastest candidate
whose AUC stays within 0.005 of the teacher's; speedups are that candidate's rows/s over the
teacher's eager rows/s.

    python benchmarks/inference_compression.py --json
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import SHARED_DATA, emit  # noqa: E402


def eager_rows_per_s(model, x: np.ndarray, batch: int, calls: int) -> tuple[float, float, float]:
    """(rows/s, p50 ms, p99 ms) of the eager torch model at `batch` rows per call."""
    block = torch.from_numpy(np.resize(x, (batch, x.shape[1])).astype(np.float32))
    times = []
    with torch.inference_mode():
        for _ in range(20):
            model(block)
        for _ in range(calls):
            start = time.perf_counter()
            torch.sigmoid(model(block))
            times.append(time.perf_counter() - start)
    t = np.array(times)
    return batch / t.mean(), float(np.percentile(t, 50) * 1e3), float(np.percentile(t, 99) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ulb_creditcard_fraud_sample.csv")
    parser.add_argument("--label", default="Class")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    path = SHARED_DATA / "credit" / args.dataset
    if not path.exists():
        sys.exit(f"needs {path} (../shared/data/credit beside the repository)")
    torch.set_num_threads(1)
    from runtime import Client, TrainingJob
    from runtime.artifacts.signing import generate_keypair
    from runtime.compression.data import load_compression_data
    from runtime.compression.pipeline import compress
    from runtime.training.models import build_model

    work = Path(tempfile.mkdtemp(prefix="suanli-infer-"))
    private, public = generate_keypair(work / "keys")
    with Client(state_dir=work / "state") as client:
        job = client.submit(TrainingJob(name="teacher", dataset=str(path), label=args.label, workers=1, device="cpu"))
        if job.wait(timeout=1200).value != "SUCCEEDED":
            sys.exit(job.logs())
        artifact = client.export(job, work / "teacher", private)
        checkpoint = job.result().checkpoint
    state = torch.load(Path(checkpoint) / "state.pt", weights_only=True)
    teacher = build_model(state["model_name"], len(state["features"]), state["hidden"]).eval()
    teacher.load_state_dict(state["model"])
    layers = [len(state["features"]), *state["hidden"], 1]
    splits = load_compression_data(artifact)  # the artifact's own split and preprocessing
    report = compress(artifact, work / "compressed", private_key=private, public_key=public)
    teacher_b1, teacher_p50, teacher_p99 = eager_rows_per_s(teacher, splits.x_test, 1, 2000)
    teacher_b256, _, _ = eager_rows_per_s(teacher, splits.x_test, 256, 200)
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        teacher_auc = float(roc_auc_score(splits.y_test, torch.sigmoid(teacher(torch.from_numpy(splits.x_test))).numpy()))
    chosen = report["before"] if report["chosen"] == "source" else report["candidates"][report["chosen"]]["after"]
    table = {"teacher_torch_eager_fp32": {"auc": teacher_auc, "batch1_p50_ms": teacher_p50, "batch1_p99_ms": teacher_p99,
                                          "batch1_rows_per_s": teacher_b1, "batch256_rows_per_s": teacher_b256,
                                          "size_bytes": (artifact / "model.pt").stat().st_size},
             "teacher_onnxruntime_fp32": report["before"]}
    table.update({name: run["after"] for name, run in report["candidates"].items()})
    qps = chosen["batch1_rows_per_s"]
    result = {
        "dataset": args.dataset, "teacher_layers": layers, "threads": 1, "table": table, "chosen": report["chosen"],
        "speedup_batch1": round(chosen["batch1_rows_per_s"] / teacher_b1, 2),
        "speedup_batch256": round(chosen["batch256_rows_per_s"] / teacher_b256, 2),
        "auc_delta": round(teacher_auc - chosen["auc"], 4),
        "jrt0221_qps_floor": 20, "qps_single_row": round(qps), "qps_margin_x": round(qps / 20),
        "jrt0221_1000_batch_predictions_s": 1000 / chosen["batch1_rows_per_s"],
        "jrt0221_1000_batch_margin_x": round(3600 / (1000 / chosen["batch1_rows_per_s"])),
    }
    markdown = (f"| inference and compression | {args.dataset}, teacher {'-'.join(map(str, layers))} eager vs chosen "
                f"{report['chosen']} (ONNX Runtime), 1 thread | {result['speedup_batch1']}x rows/s at batch 1, "
                f"{result['speedup_batch256']}x at batch 256, AUC delta {result['auc_delta']} | QPS {result['qps_single_row']:,} "
                f"({result['qps_margin_x']:,}x the JR/T 0221 floor of 20) |")
    emit("inference_compression", result, markdown, args.json)


if __name__ == "__main__":
    main()
