"""The compression pipeline: from one signed artifact, candidates made by distillation, int8
quantization (dynamic, and static QDQ) and magnitude pruning, each a new signed artifact with
its run recorded in compression.json; then the fastest candidate (single-row throughput) whose
test AUC stays within `auc_tolerance` of the source's is chosen.

When distillation is asked for, quantization is applied to the distilled student (the small model
is the one worth quantizing); otherwise to the source model. Pruning starts from the source.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from runtime.artifacts.signing import sign_directory, verify_directory
from runtime.compression import methods as m
from runtime.compression.measure import measure_onnx
from runtime.datasets import prepare_splits
from runtime.training.loop import build_model

METHODS = ("distillation", "quantize_dynamic", "quantize_static", "pruning")
CARRIED = ("preprocessing.json", "provenance.json", "MODEL_CARD.md")


def _splits(source: Path):
    provenance = json.loads((source / "provenance.json").read_text())
    data = provenance.get("training_data") or {}
    if not data.get("label") or not data.get("split"):
        raise ValueError(f"{source}/provenance.json: records no training data split; compression needs it to "
                         "evaluate and fine-tune")
    split = data["split"]
    return prepare_splits(data["source"], data["label"], data.get("categorical") or [], split["validation_fraction"],
                          split["test_fraction"], split["seed"])


def _teacher(source: Path) -> tuple[torch.nn.Module, list[int]]:
    state = torch.load(source / "model.pt", weights_only=True)  # verified artifact; tensors only
    features = len(json.loads((source / "preprocessing.json").read_text())["features"])
    model = build_model(state["model_name"], features, state["hidden"])
    model.load_state_dict(state["model"])
    return model.eval(), state["hidden"]


def _finish(source: Path, out: Path, method: str, parameters: dict, before: dict, after: dict, seconds: float,
            private_key) -> dict:
    for name in CARRIED:
        shutil.copy(source / name, out / name)
    metrics = json.loads((source / "metrics.json").read_text())
    metrics.update({"auc": after["auc"], "auc_before_compression": before["auc"]})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    run = {"method": method, "parameters": parameters, "source_artifact": str(source), "seconds": round(seconds, 2),
           "before": before, "after": after, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    history = json.loads((source / "compression.json").read_text()) + [run]
    (out / "compression.json").write_text(json.dumps(history, indent=2))
    with (out / "MODEL_CARD.md").open("a") as card:
        card.write(f"- compressed by {method} ({parameters}); AUC {before['auc']:.4f} -> {after['auc']:.4f}\n")
    sign_directory(out, private_key)
    return run


def compress(artifact_dir: str | Path, out_root: str | Path, methods=METHODS, private_key=None, public_key=None,
             auc_tolerance: float = 0.005, student_hidden=(32,)) -> dict:
    """Make the candidates, measure them, choose one. Returns {"before", "candidates": {name: run},
    "chosen": name or "source", "chosen_path"}."""
    unknown = [x for x in methods if x not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    source = Path(artifact_dir)
    verify_directory(source, public_key)
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    splits = _splits(source)
    before = measure_onnx(source / "model.onnx", splits.x_test, splits.y_test)
    teacher, hidden = _teacher(source)
    candidates: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    base_onnx, base_name = source / "model.onnx", "source"

    def make(name, method, work):
        out = root / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        started = time.perf_counter()
        parameters = work(out)
        after = measure_onnx(out / "model.onnx", splits.x_test, splits.y_test)
        candidates[name] = _finish(source, out, method, parameters, before, after, time.perf_counter() - started,
                                   private_key)
        paths[name] = out
        return out

    if "distillation" in methods:
        out = make("student", "distillation", lambda o: m.distil(teacher, splits, o, hidden=student_hidden))
        base_onnx, base_name = out / "model.onnx", "student"
    if "quantize_dynamic" in methods:
        make(f"{base_name}-int8-dynamic", "quantize_dynamic",
             lambda o: {**m.quantize_dynamic_int8(base_onnx, o), "of": base_name})
    if "quantize_static" in methods:
        make(f"{base_name}-int8-qdq", "quantize_static",
             lambda o: {**m.quantize_static_qdq(base_onnx, splits, o), "of": base_name})
    if "pruning" in methods:
        make("pruned", "pruning", lambda o: m.prune(teacher, splits, o, hidden))
    eligible = {name: run["after"] for name, run in candidates.items() if run["after"]["auc"] >= before["auc"] - auc_tolerance}
    eligible["source"] = before
    chosen = max(eligible, key=lambda name: eligible[name]["batch1_rows_per_s"])
    return {"before": before, "candidates": candidates, "chosen": chosen,
            "chosen_path": str(source if chosen == "source" else paths[chosen])}
