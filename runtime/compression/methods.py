"""The compression methods. Each works on the model part of an artifact (features in,
probability out) and writes `core.onnx` (and the model's own file where its weights change) into
its output directory; the pipeline puts the preprocessing back in front and signs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
from sklearn.metrics import roc_auc_score

from runtime.artifacts.graph import lightgbm_core, torch_core, xgboost_core
from runtime.artifacts.load import ort_session
from runtime.compression.data import CompressionData
from runtime.training.models import build_model

CORE_FILE = "core.onnx"


def core_scores(core: onnx.ModelProto | Path, x: np.ndarray) -> np.ndarray:
    """The model part's probabilities for feature rows, through ONNX Runtime."""
    payload = core.SerializeToString() if isinstance(core, onnx.ModelProto) else core
    return ort_session(payload, threads=None).run(["probability"], {"features": x})[0]


def _fit(model, loss_of, data: CompressionData, epochs: int, lr: float, batch: int, seed: int):
    """Train with Adam; keep the weights of the epoch with the best validation AUC."""
    import torch

    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(data.x_train)
    best, best_auc = copy.deepcopy(model.state_dict()), -1.0
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch):
            index = order[i:i + batch]
            optimiser.zero_grad()
            loss_of(model, index).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            auc = roc_auc_score(data.y_val, model(torch.from_numpy(data.x_val)).numpy())
        if auc > best_auc:
            best, best_auc = copy.deepcopy(model.state_dict()), auc
    model.load_state_dict(best)
    return model


def distil(data: CompressionData, out: Path, hidden=(32,), temperature: float = 2.0, alpha: float = 0.5,
           epochs: int = 40, lr: float = 3e-3, batch: int = 128, seed: int = 0) -> dict:
    """Knowledge distillation into an MLP student: it learns the teacher's soft targets (its
    probabilities on the training rows, whatever the teacher is: MLP or tree ensemble) at
    `temperature`, mixed with the true labels (weight `alpha`)."""
    import torch

    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    teacher = np.clip(core_scores(data.core, data.x_train), 1e-6, 1 - 1e-6)
    soft = torch.sigmoid(torch.from_numpy(np.log(teacher / (1 - teacher))).float() / temperature)
    torch.manual_seed(seed)
    student = build_model("mlp", x.shape[1], list(hidden))
    pos_weight = torch.tensor(data.positive_weight)

    def loss_of(model, index):
        logits = model(x[index])
        hard = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[index], pos_weight=pos_weight)
        soft_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits / temperature, soft[index])
        return alpha * hard + (1 - alpha) * soft_loss * temperature**2

    student = _fit(student, loss_of, data, epochs, lr, batch, seed)
    onnx.save(torch_core(student, x.shape[1]), out / CORE_FILE)
    torch.save({"model": student.state_dict(), "model_name": "mlp", "hidden": list(hidden)}, out / "model.pt")
    return {"teacher": data.model, "student": "mlp", "student_hidden": list(hidden), "temperature": temperature,
            "alpha": alpha, "epochs": epochs, "learning_rate": lr}


def prune(source: Path, data: CompressionData, out: Path, amount: float = 0.5, fine_tune_epochs: int = 10,
          lr: float = 1e-3, batch: int = 128, seed: int = 0) -> dict:
    """Global magnitude pruning of `amount` of an MLP's Linear weights, then fine-tuning with the
    pruned weights held at zero."""
    import torch
    from torch.nn.utils import prune as torch_prune

    state = torch.load(source / "model.pt", weights_only=True)  # verified artifact; tensors only
    model = build_model(state["model_name"], data.x_train.shape[1], state["hidden"])
    model.load_state_dict(state["model"])
    linears = [(m, "weight") for m in model.modules() if isinstance(m, torch.nn.Linear)]
    torch_prune.global_unstructured(linears, pruning_method=torch_prune.L1Unstructured, amount=amount)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    pos_weight = torch.tensor(data.positive_weight)

    def loss_of(m, index):
        return torch.nn.functional.binary_cross_entropy_with_logits(m(x[index]), y[index], pos_weight=pos_weight)

    model = _fit(model, loss_of, data, fine_tune_epochs, lr, batch, seed)
    for module, name in linears:
        torch_prune.remove(module, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in linears)
    total = sum(m.weight.numel() for m, _ in linears)
    onnx.save(torch_core(model, x.shape[1]), out / CORE_FILE)
    torch.save({"model": model.state_dict(), "model_name": state["model_name"], "hidden": state["hidden"]},
               out / "model.pt")
    return {"amount": amount, "fine_tune_epochs": fine_tune_epochs, "weights_zero": zeros, "weights_total": total,
            "note": "dense ONNX kernels do not skip zeros: pruning shrinks compressed size, not latency"}


def truncate_trees(source: Path, data: CompressionData, out: Path, auc_tolerance: float,
                   fractions=(0.2, 0.35, 0.5, 0.75)) -> dict:
    """Keep the first k boosting rounds of a tree ensemble: the smallest k (among `fractions` of
    the rounds) whose validation AUC stays within `auc_tolerance` of the whole ensemble's."""
    if data.model == "xgboost":
        import xgboost

        booster = xgboost.Booster(model_file=str(source / "model.ubj"))
        rounds = booster.num_boosted_rounds()

        def first(k):
            return booster[:k]

        def save(model):
            model.save_model(str(out / "model.ubj"))

        def convert(model):
            return xgboost_core(model, data.x_train.shape[1])

        def scores(model, x):
            return model.inplace_predict(x)
    else:
        import lightgbm

        booster = lightgbm.Booster(model_file=str(source / "model.txt"))
        rounds = booster.current_iteration()

        def first(k):
            return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=k))

        def save(model):
            (out / "model.txt").write_text(model.model_to_string())

        def convert(model):
            return lightgbm_core(model, data.x_train.shape[1])

        def scores(model, x):
            return model.predict(x)
    full = roc_auc_score(data.y_val, scores(booster, data.x_val))
    kept, kept_auc = rounds, full
    for fraction in fractions:
        k = max(1, int(rounds * fraction))
        auc = roc_auc_score(data.y_val, scores(first(k), data.x_val))
        if auc >= full - auc_tolerance:
            kept, kept_auc = k, auc
            break
    model = first(kept)
    save(model)
    onnx.save(convert(model), out / CORE_FILE)
    return {"rounds_before": rounds, "rounds_kept": kept, "val_auc_before": float(full), "val_auc_after": float(kept_auc),
            "tolerance": auc_tolerance}


def quantize_dynamic_int8(source_core: Path, out: Path) -> dict:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source_core), str(out / CORE_FILE), weight_type=QuantType.QInt8)
    return {"weight_type": "int8", "activations": "dynamic (per call)"}


def quantize_static_qdq(source_core: Path, data: CompressionData, out: Path, calibration_rows: int = 512) -> dict:
    """ONNX Runtime static quantization in QDQ format, calibrated on training rows (MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rows = data.x_train[:calibration_rows].astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"features": rows[i:i + 64]} for i in range(0, len(rows), 64)])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(str(source_core), str(out / CORE_FILE), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return {"format": "QDQ", "weight_type": "int8", "activation_type": "int8", "calibration_rows": len(rows),
            "calibration_method": "MinMax"}
