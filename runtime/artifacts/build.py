"""Writing model artifacts: a directory holding the model in ONNX (its preprocessing inside the same
graph), the model's own file, metrics, provenance, compression record and a short model card,
signed as a whole (`model.sig`). Loading always verifies the signature first; there is no switch
to skip it.

    artifact/
      model.onnx          raw columns in (one input per column: numbers float32, categorical
                          columns strings, each (rows, 1)) -> "probability" (rows); the fitted
                          preprocessing (impute, scale, one-hot) and the model in one graph
      model.pt | model.ubj | model.txt
                          the model's own file: torch state, XGBoost or LightGBM booster (for
                          fine-tuning, distillation, tree compression)
      preprocessing.json  the raw columns (name, number or string), the label, the feature names
                          after preprocessing, and the split plan the model was trained with
      metrics.json        test-split metrics
      provenance.json     the training record (JR/T 0221 6.4)
      compression.json    compression runs applied (empty for a trained model)
      MODEL_CARD.md       what it is, for whom, how good
      model.sig           the signature over all of the above
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from runtime.artifacts.signing import sign_directory


def model_card(name: str, metrics: dict, provenance: dict, preprocessing: dict) -> str:
    """MODEL_CARD.md: what the model is, its inputs and output, its data, how good it is, who ran it."""
    data = provenance.get("training_data") or {}
    model = preprocessing.get("model", "model")
    return (f"# {name}\n\nBinary classifier (fraud / credit risk), {model}, trained by suanli.\n\n"
            f"- inputs: {len(preprocessing['inputs'])} raw columns ({len(preprocessing['categorical'])} categorical); "
            f"imputation, scaling and one-hot encoding fitted on the training split are inside model.onnx\n"
            f"- output: probability of the positive class\n"
            f"- training data: {data.get('source')} (sha256 {data.get('sha256')}, {data.get('volume', {}).get('rows')} rows)\n"
            f"- test AUC {metrics.get('auc', float('nan')):.4f}, KS {metrics.get('ks', float('nan')):.4f}; JR/T 0221 "
            f"AUC bar {metrics.get('jrt0221_auc_bar')}: {'pass' if metrics.get('jrt0221_auc_pass') else 'FAIL'}\n"
            f"- operator: {provenance.get('operator')}\n")


def build_artifact(checkpoint_dir: str | Path, metrics: dict, provenance: dict, out_dir: str | Path, name: str,
                   private_key: str | Path | None = None, checkpoint_sha256: str | None = None) -> Path:
    """Write and sign an artifact directory from a training checkpoint. With `checkpoint_sha256`
    (the one the store recorded when the checkpoint was written), a checkpoint whose bytes changed
    since is refused before anything is signed."""
    import onnx

    from runtime.artifacts.graph import core_from_model_file, merge
    from runtime.data.ray_io import PreparedData
    from runtime.training.checkpoints import read_meta, verify_checkpoint

    checkpoint = verify_checkpoint(checkpoint_dir, checkpoint_sha256)
    meta = read_meta(checkpoint)
    prepared = PreparedData.load(checkpoint)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out_dir: {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    features = len(prepared.preprocessing.feature_names)
    state = None
    if meta["model_file"] == "state.pt":
        import torch

        state = torch.load(checkpoint / "state.pt", weights_only=True)
        torch.save({"model": state["model"], "model_name": state["model_name"], "hidden": state["hidden"]},
                   out / "model.pt")
    else:
        shutil.copy(checkpoint / meta["model_file"], out / meta["model_file"])
    core = core_from_model_file(meta["model"], checkpoint, features, state=state)
    onnx.save(merge(prepared.preprocessing.onnx_bytes, core), out / "model.onnx")
    preprocessing = describe_preprocessing(prepared, meta["model"])
    (out / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
    (out / "compression.json").write_text("[]")
    (out / "MODEL_CARD.md").write_text(model_card(name, metrics, provenance, preprocessing))
    sign_directory(out, private_key)
    return out


def describe_preprocessing(prepared, model: str) -> dict:
    """preprocessing.json: the raw inputs, the features after preprocessing, the split plan."""
    pre = prepared.preprocessing
    return {"model": model, "label": prepared.plan.label,
            "inputs": [{"name": c, "type": "number"} for c in pre.numeric]
            + [{"name": c, "type": "string"} for c in pre.categorical],
            "numeric": pre.numeric, "categorical": pre.categorical, "features": pre.feature_names,
            "preprocessing_sha256": pre.sha256, "split_plan": prepared.plan.to_json()}
