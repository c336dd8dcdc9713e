"""The compression methods. Each takes the source artifact's torch model or ONNX file and the
data splits, and writes a new `model.onnx` (and `model.pt` where torch weights change)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from runtime.artifacts.artifact import export_onnx
from runtime.datasets import Splits
from runtime.training.loop import build_model


def _fit(model: torch.nn.Module, loss_of, splits: Splits, epochs: int, lr: float, batch: int, seed: int):
    """Train with Adam; keep the weights of the epoch with the best validation AUC."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(splits.x_train)
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
            auc = roc_auc_score(splits.y_val, model(torch.from_numpy(splits.x_val)).numpy())
        if auc > best_auc:
            best, best_auc = copy.deepcopy(model.state_dict()), auc
    model.load_state_dict(best)
    return model


def distil(teacher: torch.nn.Module, splits: Splits, out: Path, hidden=(32,), temperature: float = 2.0,
           alpha: float = 0.5, epochs: int = 40, lr: float = 3e-3, batch: int = 128, seed: int = 0) -> dict:
    """Knowledge distillation: a smaller MLP learns the teacher's soft targets (temperature
    `temperature`) mixed with the true labels (weight `alpha`)."""
    teacher.eval()
    x = torch.from_numpy(splits.x_train)
    y = torch.from_numpy(splits.y_train)
    with torch.no_grad():
        soft = torch.sigmoid(teacher(x) / temperature)
    torch.manual_seed(seed)
    student = build_model("mlp", x.shape[1], list(hidden))
    pos_weight = torch.tensor(splits.positive_weight)

    def loss_of(model, index):
        logits = model(x[index])
        hard = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[index], pos_weight=pos_weight)
        soft_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits / temperature, soft[index])
        return alpha * hard + (1 - alpha) * soft_loss * temperature**2

    student = _fit(student, loss_of, splits, epochs, lr, batch, seed)
    export_onnx(student, x.shape[1], out / "model.onnx")
    torch.save({"model": student.state_dict(), "model_name": "mlp", "hidden": list(hidden)}, out / "model.pt")
    return {"student_hidden": list(hidden), "temperature": temperature, "alpha": alpha, "epochs": epochs,
            "learning_rate": lr}


def prune(model: torch.nn.Module, splits: Splits, out: Path, hidden, amount: float = 0.5, fine_tune_epochs: int = 10,
          lr: float = 1e-3, batch: int = 128, seed: int = 0) -> dict:
    """Global magnitude pruning of `amount` of the Linear weights, then fine-tuning with the
    pruned weights held at zero."""
    from torch.nn.utils import prune as torch_prune

    pruned = copy.deepcopy(model)
    linears = [(m, "weight") for m in pruned.modules() if isinstance(m, torch.nn.Linear)]
    torch_prune.global_unstructured(linears, pruning_method=torch_prune.L1Unstructured, amount=amount)
    x = torch.from_numpy(splits.x_train)
    y = torch.from_numpy(splits.y_train)
    pos_weight = torch.tensor(splits.positive_weight)

    def loss_of(m, index):
        return torch.nn.functional.binary_cross_entropy_with_logits(m(x[index]), y[index], pos_weight=pos_weight)

    pruned = _fit(pruned, loss_of, splits, fine_tune_epochs, lr, batch, seed)
    for module, name in linears:
        torch_prune.remove(module, name)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in linears)
    total = sum(m.weight.numel() for m, _ in linears)
    export_onnx(pruned, x.shape[1], out / "model.onnx")
    torch.save({"model": pruned.state_dict(), "model_name": "mlp", "hidden": list(hidden)}, out / "model.pt")
    return {"amount": amount, "fine_tune_epochs": fine_tune_epochs, "weights_zero": zeros, "weights_total": total,
            "note": "dense ONNX kernels do not skip zeros: pruning shrinks compressed size, not latency"}


def quantize_dynamic_int8(source_onnx: Path, out: Path) -> dict:
    """ONNX Runtime dynamic quantization: int8 weights, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source_onnx), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    return {"weight_type": "int8", "activations": "dynamic (per call)"}


def quantize_static_qdq(source_onnx: Path, splits: Splits, out: Path, calibration_rows: int = 512) -> dict:
    """ONNX Runtime static quantization in QDQ format, calibrated on training rows (MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rows = splits.x_train[:calibration_rows].astype(np.float32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"features": rows[i:i + 64]} for i in range(0, len(rows), 64)])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(str(source_onnx), str(out / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return {"format": "QDQ", "weight_type": "int8", "activation_type": "int8", "calibration_rows": len(rows),
            "calibration_method": "MinMax"}
