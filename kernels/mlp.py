"""The tabular fraud MLP and its fast inference forward pass.

`FraudMLP` is the built-in model (input -> 256 -> 256 -> 128 -> 1 logit by default). For
inference, `fused_forward` returns a function that runs the same arithmetic as a chain of
`torch.addmm` with in-place ReLU on pre-transposed weights: no module dispatch, no hooks, fewer
allocations (on this 2-core machine about 2x eager at batch 1, about 1.1x at batch 256).
On CUDA it additionally wraps that chain in `torch.compile` (Triton kernels, bias and ReLU fused
into the matmul epilogue), falling back to the plain chain if compilation fails; on the CPU
`torch.compile` gave no gain here (measured, see benchmarks/kernels.py) and costs ~25 s to compile,
so it is used only when asked for (`compile=True`). The CUDA path has not yet run on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from kernels.device import resolve_device

DEFAULT_HIDDEN = (256, 256, 128)


class FraudMLP(nn.Module):
    """A ReLU multilayer perceptron for binary classification of tabular rows; outputs logits."""

    def __init__(self, in_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN, dropout: float = 0.0):
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features: must be >= 1, got {in_features}")
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden: layer sizes must be >= 1, got {list(hidden)}")
        layers: list[nn.Module] = []
        previous = in_features
        for size in hidden:
            layers += [nn.Linear(previous, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            previous = size
        layers.append(nn.Linear(previous, 1))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.hidden = tuple(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's Linear layers in order (its other layers must be ReLU, Dropout or Identity)."""
    layers = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            layers.append(module)
        elif not isinstance(module, nn.ReLU | nn.Dropout | nn.Identity | nn.Sequential | FraudMLP):
            raise ValueError(f"model: fused_forward handles Linear/ReLU stacks; found {type(module).__name__}")
    if not layers:
        raise ValueError("model: has no Linear layers")
    return layers


def fused_forward(model: nn.Module, device: str | torch.device = "cpu", compile: bool | None = None
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """An inference-only forward for a Linear/ReLU stack: logits for a (rows, features) batch.

    Weights are copied to `device` once; inputs are moved there. `compile` None means: on CUDA
    yes, on the CPU no. The result agrees with the eager module to 1e-5 (float32).
    """
    dev = resolve_device(device)
    weights = [(layer.weight.detach().t().contiguous().to(dev), layer.bias.detach().clone().to(dev))
               for layer in linear_layers(model)]
    last = len(weights) - 1

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = x.to(dev, dtype=torch.float32, non_blocking=True)
        for i, (w, b) in enumerate(weights):
            h = torch.addmm(b, h, w)
            if i < last:
                h.relu_()
        return h.squeeze(-1)

    use_compile = dev.type == "cuda" if compile is None else compile
    if not use_compile:
        return torch.inference_mode()(forward)
    compiled = torch.compile(forward, dynamic=True)

    def guarded(x: torch.Tensor) -> torch.Tensor:
        nonlocal compiled
        with torch.inference_mode():
            try:
                return compiled(x)
            except Exception:  # noqa: BLE001 - any compiler failure falls back to the plain chain
                compiled = forward
                return forward(x)

    return guarded
