"""The compression pipeline: from one signed artifact, candidates made by distillation into an MLP
student, int8 quantization (dynamic, and static QDQ), magnitude pruning (MLPs) and tree
truncation (tree ensembles), each a new signed artifact (the artifact's preprocessing graph back
in front of the compressed model) with its run recorded in compression.json; then the fastest
candidate (single-row throughput, measured with the ONNX Runtime providers of the device kind it
will be served on) whose test AUC stays within `auc_tolerance` of the source's is chosen.

When distillation is asked for, quantization is applied to the distilled student (the small model
is the one worth quantizing); otherwise to the source model, unless that is a tree ensemble
(ONNX Runtime's int8 quantization rewrites MatMul/Gemm weights, which trees have none of: skipped,
and said so in the report).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import onnx

from runtime.artifacts.graph import merge
from runtime.artifacts.signing import sign_directory, verify_directory
from runtime.compression import methods as m
from runtime.compression.data import load_compression_data
from runtime.compression.measure import measure_onnx
from runtime.training.models import GBDT_MODELS

METHODS = ("distillation", "quantize_dynamic", "quantize_static", "pruning", "tree_truncation")
CARRIED = ("provenance.json", "MODEL_CARD.md")


def default_methods(model: str) -> tuple[str, ...]:
    """What is worth trying for a model: trees are truncated and distilled, MLPs all but truncation."""
    if model in GBDT_MODELS:
        return ("distillation", "tree_truncation", "quantize_dynamic")
    return ("distillation", "quantize_dynamic", "quantize_static", "pruning")


def _finish(source: Path, out: Path, data, method: str, parameters: dict, before: dict, after: dict, seconds: float,
            private_key, model_name: str) -> dict:
    onnx.save(merge(data.preprocessing, onnx.load(str(out / m.CORE_FILE))), out / "model.onnx")
    (out / m.CORE_FILE).unlink()
    for name in CARRIED:
        shutil.copy(source / name, out / name)
    described = json.loads((source / "preprocessing.json").read_text())
    (out / "preprocessing.json").write_text(json.dumps({**described, "model": model_name}, indent=2))
    metrics = json.loads((source / "metrics.json").read_text())
    metrics.update({"auc": after["auc"], "auc_before_compression": before["auc"]})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    run = {"method": method, "parameters": parameters, "source_artifact": str(source), "source_model": data.model,
           "model": model_name, "seconds": round(seconds, 2), "before": before, "after": after,
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    history = json.loads((source / "compression.json").read_text()) + [run]
    (out / "compression.json").write_text(json.dumps(history, indent=2))
    with (out / "MODEL_CARD.md").open("a") as card:
        card.write(f"- compressed by {method} ({parameters}); AUC {before['auc']:.4f} -> {after['auc']:.4f}\n")
    sign_directory(out, private_key)
    return run


def compress(artifact_dir: str | Path, out_root: str | Path, methods=None, private_key=None, public_key=None,
             auc_tolerance: float = 0.005, student_hidden=(32,), kind: str = "cpu") -> dict:
    """Make the candidates, measure them on `kind`'s providers, choose one. Returns {"before",
    "candidates": {name: run}, "skipped": {method: why}, "chosen": name or "source", "chosen_path"}."""
    source = Path(artifact_dir)
    verify_directory(source, public_key)
    data = load_compression_data(source)
    methods = tuple(methods or default_methods(data.model))
    unknown = [x for x in methods if x not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    tree = data.model in GBDT_MODELS
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    source_core = root / "source-core.onnx"
    onnx.save(data.core, source_core)
    before = measure_onnx(source_core, data.x_test, data.y_test, kind=kind)
    candidates: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    paths: dict[str, Path] = {}
    base_core, base_name, base_model = source_core, "source", data.model

    def make(name, method, work, model_name):
        out = root / name
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        started = time.perf_counter()
        parameters = work(out)
        after = measure_onnx(out / m.CORE_FILE, data.x_test, data.y_test, kind=kind)
        shutil.copy(out / m.CORE_FILE, root / f"{name}-core.onnx")
        candidates[name] = _finish(source, out, data, method, parameters, before, after, time.perf_counter() - started,
                                   private_key, model_name)
        paths[name] = out
        return root / f"{name}-core.onnx"

    if "distillation" in methods:
        base_core = make("student", "distillation", lambda o: m.distil(data, o, hidden=student_hidden), "mlp")
        base_name, base_model = "student", "mlp"
    if "tree_truncation" in methods:
        if tree:
            make("truncated", "tree_truncation", lambda o: m.truncate_trees(source, data, o, auc_tolerance), data.model)
        else:
            skipped["tree_truncation"] = f"the source is a {data.model}, not a tree ensemble"
    for method, work in (("quantize_dynamic", lambda o: m.quantize_dynamic_int8(base_core, o)),
                         ("quantize_static", lambda o: m.quantize_static_qdq(base_core, data, o))):
        if method not in methods:
            continue
        if base_model in GBDT_MODELS:
            skipped[method] = ("int8 quantization rewrites MatMul/Gemm weights and a tree ensemble has none; "
                               "distil the trees into an MLP student first (add distillation)")
            continue
        suffix = "int8-dynamic" if method == "quantize_dynamic" else "int8-qdq"
        make(f"{base_name}-{suffix}", method, lambda o, w=work: {**w(o), "of": base_name}, base_model)
    if "pruning" in methods:
        if data.model == "mlp":
            make("pruned", "pruning", lambda o: m.prune(source, data, o), "mlp")
        else:
            skipped["pruning"] = f"magnitude pruning is for MLPs; the source is a {data.model}"
    eligible = {name: run["after"] for name, run in candidates.items() if run["after"]["auc"] >= before["auc"] - auc_tolerance}
    eligible["source"] = before
    chosen = max(eligible, key=lambda name: eligible[name]["batch1_rows_per_s"])
    return {"before": before, "candidates": candidates, "skipped": skipped, "chosen": chosen, "kind": kind,
            "chosen_path": str(source if chosen == "source" else paths[chosen])}
