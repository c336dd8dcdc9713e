"""The tabular fraud MLP and its fast inference forward pass.

`FraudMLP` is the built-in model (input -> 256 -> 256 -> 128 -> 1 logit by default). For
inference, `fused_forward` returns a function that runs the same arithmetic as a chain of
`torch.addmm` and in-place ReLU on pre-transposed weights (on CUDA above 1,024 rows, the ReLU
fused into the matmul by `torch._addmm_activation`): no module dispatch, no hooks, fewer
allocations (on this 2-core machine about 2x eager at batch 1, about 1.1x at batch 256).

On CUDA a small batch costs its kernel launches, not its arithmetic, so the chain is captured as
one CUDA graph per batch bucket (`GRAPH_BUCKETS`): a batch is copied into the bucket's static
input buffer (zero rows pad it up to the bucket), the graph is replayed, and the first rows of the
static output are returned. Batches above the largest bucket run the plain chain. `torch.compile`
is not used: on an H200 its dynamic-shape forward took 343 us at batch 1 against 152 us for the
plain chain and 21 us for a graph replay (issue 27), and on the CPU it gave no gain. On an H200
(`kernels.gpucheck`, 2026-12-04) a graph call at batch 1 took 43 us (70 us with the copy back) and
at batch 256 62 us, against 147 and 182 us for the plain chain; its bucketing and padding are
tested on the CPU through the same `BucketedForward` class, run there without capture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from kernels.device import resolve_device

DEFAULT_HIDDEN = (256, 256, 128)
# Batch sizes captured as CUDA graphs; a batch runs in the smallest bucket that holds it.
GRAPH_BUCKETS = (1, 8, 64, 256, 1024)
# Rows above which a CUDA forward fuses each hidden layer's ReLU into its matmul (measured, below).
FUSED_RELU_FROM_ROWS = 1024


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


def bucket_for(batch: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket holding `batch` rows, or None when the batch is larger than them all."""
    if batch < 1:
        raise ValueError(f"x: a batch needs at least one row, got {batch}")
    return next((b for b in sorted(buckets) if b >= batch), None)


@dataclass
class BucketedForward:
    """A forward over static per-bucket buffers: `chain(x) -> logits` run on a fixed-shape input.

    With `capture` (CUDA), each bucket's chain is recorded once as a CUDA graph on first use and
    replayed after; without it (the CPU, for tests) the chain runs on the same static buffers, so
    the bucketing, padding and slicing are the ones the graphs use. Batches larger than every
    bucket call `chain` directly.
    """

    chain: Callable[[torch.Tensor], torch.Tensor]
    in_features: int
    device: torch.device
    buckets: tuple[int, ...] = GRAPH_BUCKETS
    capture: bool = False
    _static: dict[int, tuple[torch.Tensor, torch.Tensor, object]] = field(default_factory=dict)

    def _prepare(self, bucket: int) -> tuple[torch.Tensor, torch.Tensor, object]:
        static_in = torch.zeros(bucket, self.in_features, dtype=torch.float32, device=self.device)
        if not self.capture:
            return static_in, self.chain(static_in), None
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm-up outside the graph, as torch.cuda.graphs requires
            for _ in range(3):
                self.chain(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.chain(static_in)
        return static_in, static_out, graph

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x: expected (rows, {self.in_features}), got shape {tuple(x.shape)}")
        rows = x.shape[0]
        bucket = bucket_for(rows, self.buckets)
        if bucket is None:
            return self.chain(x.to(self.device, dtype=torch.float32, non_blocking=True))
        if bucket not in self._static:
            self._static[bucket] = self._prepare(bucket)
        static_in, static_out, graph = self._static[bucket]
        static_in[:rows].copy_(x, non_blocking=True)
        if rows < bucket:
            static_in[rows:].zero_()
        if graph is None:
            static_out = self.chain(static_in)
        else:
            graph.replay()
        return static_out[:rows].clone()  # the next call overwrites the static output


def fused_forward(model: nn.Module, device: str | torch.device = "cpu", graphs: bool | None = None
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """An inference-only forward for a Linear/ReLU stack: logits for a (rows, features) batch.

    Weights are copied to `device` once; inputs are moved there. `graphs` None means: CUDA graphs
    per batch bucket on CUDA, the plain chain on the CPU (where a graph does not exist); True on
    the CPU is a ValueError naming `graphs`. The result agrees with the eager module to 1e-5
    (float32).
    """
    dev = resolve_device(device)
    layers = linear_layers(model)
    weights = [(layer.weight.detach().t().contiguous().to(dev), layer.bias.detach().clone().to(dev))
               for layer in layers]
    last = len(weights) - 1

    def chain(x: torch.Tensor) -> torch.Tensor:
        h = x.to(dev, dtype=torch.float32, non_blocking=True)
        # Large CUDA batches: bias, product and ReLU in one cuBLASLt call (an epilogue): on an H200
        # batch 65,536 took 387 us against 475 us for addmm then relu_; at batches <= 1024 (the
        # graph buckets) the epilogue was slower (batch 1 in a graph: 66 us against 43 us).
        fuse_relu = dev.type == "cuda" and h.shape[0] > FUSED_RELU_FROM_ROWS
        for i, (w, b) in enumerate(weights):
            if i == last:
                h = torch.addmm(b, h, w)
            elif fuse_relu:
                h = torch._addmm_activation(b, h, w)
            else:
                h = torch.addmm(b, h, w).relu_()
        return h.squeeze(-1)

    use_graphs = dev.type == "cuda" if graphs is None else graphs
    if use_graphs and dev.type != "cuda":
        raise ValueError("graphs: CUDA graphs need a CUDA device; leave graphs=None on the CPU")
    if not use_graphs:
        return torch.inference_mode()(chain)
    bucketed = BucketedForward(chain, layers[0].in_features, dev, capture=True)
    return torch.inference_mode()(bucketed)
