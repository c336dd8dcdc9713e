"""Model artifacts: a directory holding the model in ONNX (and its torch state), how to
preprocess inputs, metrics, provenance, compression record and a short model card, signed as a
whole (`model.sig`). Loading always verifies the signature first; there is no switch to skip it.

    artifact/
      model.onnx          the model, input "features" (rows x n) float32 -> output "probability" (rows)
      model.pt            torch state (for fine-tuning, distillation and pruning)
      preprocessing.json  feature names, means and scales the model expects
      metrics.json        test-split metrics
      provenance.json     the training record (JR/T 0221 6.4)
      compression.json    compression runs applied (empty for a trained model)
      MODEL_CARD.md       what it is, for whom, how good
      model.sig           the signature over all of the above
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from runtime.artifacts.signing import SIGNATURE_FILE, sign_directory, verify_directory

ARTIFACT_FILES = ("model.onnx", "model.pt", "preprocessing.json", "metrics.json", "provenance.json", "compression.json",
                  "MODEL_CARD.md")


class _Probability(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(features))


def export_onnx(model: torch.nn.Module, in_features: int, path: Path) -> None:
    """Write `model` (logits out) as ONNX that outputs probabilities, batch size dynamic."""
    model.eval()
    example = torch.zeros(2, in_features)
    torch.onnx.export(_Probability(model), (example,), str(path), input_names=["features"],
                      output_names=["probability"], dynamic_axes={"features": {0: "rows"}, "probability": {0: "rows"}},
                      opset_version=17, dynamo=False)


def model_card(name: str, metrics: dict, provenance: dict, preprocessing: dict) -> str:
    data = provenance.get("training_data") or {}
    return (f"# {name}\n\nBinary classifier (fraud / credit risk) trained by suanli.\n\n"
            f"- inputs: {len(preprocessing['features'])} features, standardised as in preprocessing.json\n"
            f"- output: probability of the positive class\n"
            f"- training data: {data.get('source')} (sha256 {data.get('sha256')}, {data.get('volume', {}).get('rows')} rows)\n"
            f"- test AUC {metrics.get('auc', float('nan')):.4f}, KS {metrics.get('ks', float('nan')):.4f}; JR/T 0221 "
            f"AUC bar {metrics.get('jrt0221_auc_bar')}: {'pass' if metrics.get('jrt0221_auc_pass') else 'FAIL'}\n"
            f"- operator: {provenance.get('operator')}\n")


def build_artifact(checkpoint_dir: str | Path, metrics: dict, provenance: dict, out_dir: str | Path, name: str,
                   private_key: str | Path | None = None, checkpoint_sha256: str | None = None) -> Path:
    """Write and sign an artifact directory from a training checkpoint (`state.pt`). With
    `checkpoint_sha256` (the one the store recorded when the checkpoint was written), a
    checkpoint whose bytes changed since is refused before anything is signed."""
    from runtime.training.loop import build_model, load_state

    state = load_state(checkpoint_dir, checkpoint_sha256)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out_dir: {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(state["model_name"], len(state["features"]), state["hidden"])
    model.load_state_dict(state["model"])
    export_onnx(model, len(state["features"]), out / "model.onnx")
    torch.save({"model": state["model"], "model_name": state["model_name"], "hidden": state["hidden"]}, out / "model.pt")
    preprocessing = {"features": state["features"], "mean": np.asarray(state["mean"]).tolist(),
                     "scale": np.asarray(state["scale"]).tolist()}
    (out / "preprocessing.json").write_text(json.dumps(preprocessing))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
    (out / "compression.json").write_text("[]")
    (out / "MODEL_CARD.md").write_text(model_card(name, metrics, provenance, preprocessing))
    sign_directory(out, private_key)
    return out


@dataclass
class LoadedModel:
    """A verified artifact with an ONNX Runtime session; `predict` takes raw feature rows."""

    directory: Path
    session: object
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    provider: str

    def predict(self, rows) -> np.ndarray:
        """Probabilities for `rows`: a 2-D array (rows x features, in `features` order) or a list of
        dicts keyed by feature name. ValueError naming the problem for wrong columns or types."""
        matrix = to_matrix(rows, self.features)
        standard = ((matrix - self.mean) / self.scale).astype(np.float32)
        return self.session.run(["probability"], {"features": standard})[0]


def to_matrix(rows, features: list[str]) -> np.ndarray:
    """Raw feature rows as a float64 matrix in the model's column order."""
    if isinstance(rows, dict):
        rows = [rows]
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        missing = [f for f in features if f not in rows[0]]
        if missing:
            raise ValueError(f"rows: missing feature(s) {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
        extra = sorted(set(rows[0]) - set(features))
        if extra:
            raise ValueError(f"rows: unknown feature(s) {', '.join(extra[:5])}; the model takes {len(features)} features")
        try:
            return np.array([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rows: every feature must be a number ({exc})") from None
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rows: must be numbers ({exc})") from None
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != len(features):
        raise ValueError(f"rows: expected shape (n, {len(features)}), got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("rows: contain NaN or infinity")
    return matrix


def execution_providers(kind: str) -> list[str]:
    """ONNX Runtime providers for a placement's device kind, best first, among those installed:
    CUDA on GPU nodes (onnxruntime-gpu), CANN on Ascend nodes, the CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = {"gpu": ["CUDAExecutionProvider"], "npu": ["CANNExecutionProvider"]}.get(kind, [])
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def load_artifact(directory: str | Path, public_key: str | Path | None = None, kind: str = "cpu",
                  threads: int = 1) -> LoadedModel:
    """Verify the artifact's signature, then open it in ONNX Runtime. SignatureError (naming the
    file) when anything was changed; nothing is loaded in that case."""
    import onnxruntime as ort

    target = Path(directory)
    verify_directory(target, public_key)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = execution_providers(kind)
    try:
        session = ort.InferenceSession(str(target / "model.onnx"), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for corrupt models
        raise ValueError(f"model.onnx: ONNX Runtime cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    pre = json.loads((target / "preprocessing.json").read_text())
    return LoadedModel(target, session, pre["features"], np.asarray(pre["mean"]), np.asarray(pre["scale"]),
                       session.get_providers()[0])


__all__ = ["ARTIFACT_FILES", "SIGNATURE_FILE", "LoadedModel", "build_artifact", "load_artifact", "to_matrix"]
