"""The built-in models: which training loop runs each, and the torch modules of the neural ones."""

from __future__ import annotations

TORCH_MODELS = ("logistic", "mlp")
GBDT_MODELS = ("xgboost", "lightgbm")


def build_model(model: str, in_features: int, hidden: list[int]):
    """The built-in torch model by name; outputs one logit per row."""
    import torch

    from kernels.mlp import FraudMLP

    if model == "mlp":
        return FraudMLP(in_features, hidden)
    if model == "logistic":
        return torch.nn.Sequential(torch.nn.Linear(in_features, 1), torch.nn.Flatten(0))
    raise ValueError(f"model: {model!r} is not a torch model; choose from {', '.join(TORCH_MODELS)}")
