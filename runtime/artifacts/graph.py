"""ONNX graphs of the built-in models, and the one graph an artifact holds: the preprocessing
(raw columns in, "features" out) followed by the model ("features" in, "probability" out).

Every part is brought to the same ONNX opsets (`ONNX_OPSETS`) and IR version before merging. The
merged graph can be cut back into its two parts by tensor name (compression rewrites the model
part and merges it again with the untouched preprocessing).
"""

from __future__ import annotations

import io
from pathlib import Path

import onnx
from onnx import TensorProto, compose, helper

from runtime.data.preprocess import ONNX_OPSETS, OUTPUT

PROBABILITY = "probability"
IR_VERSION = 8
MODEL_PREFIX = "model/"


def normalise(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with opset imports raised to ONNX_OPSETS (both domains declared) and IR 8."""
    versions = {o.domain or "": o.version for o in model.opset_import}
    for domain, version in ONNX_OPSETS.items():
        versions[domain] = max(version, versions.get(domain, 0))
    del model.opset_import[:]
    for domain, version in versions.items():
        model.opset_import.append(helper.make_opsetid(domain, version))
    model.ir_version = IR_VERSION
    return model


def _positive_column(model: onnx.ModelProto, probabilities: str) -> onnx.ModelProto:
    """Replace a classifier's outputs with PROBABILITY = probabilities[:, 1] (shape (rows,))."""
    graph = model.graph
    graph.initializer.append(helper.make_tensor("positive_class_index", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", [probabilities, "positive_class_index"], [PROBABILITY], axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(PROBABILITY, TensorProto.FLOAT, ["rows"]))
    return normalise(model)


def torch_core(model, in_features: int) -> onnx.ModelProto:
    """A torch model (logits out) as ONNX: "features" (rows x n) -> "probability" (rows)."""
    import torch

    class Probability(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, features):
            return torch.sigmoid(self.inner(features))

    model.eval()
    buffer = io.BytesIO()
    torch.onnx.export(Probability(model), (torch.zeros(2, in_features),), buffer, input_names=[OUTPUT],
                      output_names=[PROBABILITY], dynamic_axes={OUTPUT: {0: "rows"}, PROBABILITY: {0: "rows"}},
                      opset_version=ONNX_OPSETS[""], dynamo=False)
    return normalise(onnx.load_from_string(buffer.getvalue()))


def xgboost_core(booster, in_features: int) -> onnx.ModelProto:
    """An XGBoost binary:logistic booster as ONNX's TreeEnsembleClassifier (onnxmltools)."""
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_xgboost(booster, initial_types=[(OUTPUT, FloatTensorType([None, in_features]))],
                            target_opset=ONNX_OPSETS[""])
    return _positive_column(model, model.graph.output[1].name)


def lightgbm_core(booster, in_features: int) -> onnx.ModelProto:
    """A LightGBM binary booster as ONNX's TreeEnsembleClassifier (onnxmltools, no ZipMap)."""
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_lightgbm(booster, initial_types=[(OUTPUT, FloatTensorType([None, in_features]))], zipmap=False,
                             target_opset=ONNX_OPSETS[""])
    return _positive_column(model, model.graph.output[1].name)


def core_from_model_file(model: str, directory: Path, in_features: int, hidden: list[int] | None = None,
                         state: dict | None = None) -> onnx.ModelProto:
    """The model part of a checkpoint or artifact directory as ONNX."""
    if model == "xgboost":
        import xgboost

        return xgboost_core(xgboost.Booster(model_file=str(directory / "model.ubj")), in_features)
    if model == "lightgbm":
        import lightgbm

        return lightgbm_core(lightgbm.Booster(model_file=str(directory / "model.txt")), in_features)
    from runtime.training.models import build_model

    if state is None:
        import torch

        state = torch.load(directory / "state.pt", weights_only=True)
    module = build_model(model, in_features, hidden or state.get("hidden") or [])
    module.load_state_dict(state["model"])
    return torch_core(module, in_features)


def merge(preprocessing: bytes | onnx.ModelProto, core: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: raw columns -> preprocessing -> model -> PROBABILITY."""
    pre = onnx.load_from_string(preprocessing) if isinstance(preprocessing, bytes) else preprocessing
    merged = compose.merge_models(normalise(pre), normalise(core), io_map=[(OUTPUT, OUTPUT)],
                                  prefix2=MODEL_PREFIX)
    merged.graph.node.append(helper.make_node("Identity", [MODEL_PREFIX + PROBABILITY], [PROBABILITY]))
    del merged.graph.output[:]
    merged.graph.output.append(helper.make_tensor_value_info(PROBABILITY, TensorProto.FLOAT, ["rows"]))
    merged.graph.name = "suanli-model"
    onnx.checker.check_model(merged)
    return merged


def split(merged: onnx.ModelProto) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(preprocessing, model) parts of a merged graph, cut at the "features" tensor."""
    from onnx.utils import Extractor

    extractor = Extractor(merged)
    raw = [i.name for i in merged.graph.input]
    pre = extractor.extract_model(raw, [OUTPUT])
    core = extractor.extract_model([OUTPUT], [PROBABILITY])
    return normalise(pre), normalise(core)
