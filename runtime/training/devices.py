"""The device each training worker computes on, and the collective its workers talk over, from
the placement's device kind: one small function per concern, pure where it can be so that the
choice is tested on machines without the device.

- gpu: CUDA through Ray Train (`ray.train.torch.get_device()`: the GPU Ray assigned this worker);
  NCCL; XGBoost `device="cuda"`.
- npu: Ascend through `torch_npu` (`npu:<local rank>`, Ray sets ASCEND_RT_VISIBLE_DEVICES); HCCL.
  Written, never run here (no NPU and no torch_npu on the development machines).
- cpu, and every emulated accelerator (a logical resource with no device behind it): the CPU; gloo.
"""

from __future__ import annotations

COLLECTIVE_BACKENDS = {"gpu": "nccl", "npu": "hccl"}


def collective_backend(kind: str, emulated: bool) -> str:
    """The torch.distributed backend for a placement's device kind: NCCL on GPUs, HCCL on Ascend
    NPUs, gloo on CPUs and on emulated (logical) accelerators, which have no real device."""
    return "gloo" if emulated else COLLECTIVE_BACKENDS.get(kind, "gloo")


def compute_kind(kind: str, emulated: bool) -> str:
    """The device kind workers really compute on: the placement's, or the CPU when emulated."""
    return "cpu" if emulated else kind


def select_torch_device(kind: str, cuda_available: bool, npu_available: bool, local_rank: int) -> str:
    """The torch device string for a worker of `kind`. ValueError naming what is missing when the
    placement promised a device the worker cannot see (training on the CPU instead would hold the
    accelerator idle and run many times slower, silently)."""
    if kind == "gpu":
        if not cuda_available:
            raise ValueError("device: placed on a GPU but CUDA is not available in the worker (CPU-only torch?)")
        return f"cuda:{local_rank}"
    if kind == "npu":
        if not npu_available:
            raise ValueError("device: placed on an Ascend NPU but torch_npu is not importable in the worker; "
                             "install torch_npu (CANN) on NPU nodes")
        return f"npu:{local_rank}"
    return "cpu"


def npu_available() -> bool:
    """Whether Ascend NPUs are usable from torch here (imports torch_npu, which registers them)."""
    try:
        import torch
        import torch_npu  # noqa: F401 - registers the "npu" device type

        return bool(torch.npu.is_available())
    except (ImportError, AttributeError):
        return False


def worker_torch_device(kind: str):
    """The torch.device for this Ray Train worker (inside a training loop only)."""
    import ray.train
    import torch

    if kind == "gpu":
        import ray.train.torch

        device = ray.train.torch.get_device()
        if device.type != "cuda":
            select_torch_device(kind, False, False, 0)  # raises, naming the missing device
        return device
    local_rank = ray.train.get_context().get_local_rank()
    return torch.device(select_torch_device(kind, torch.cuda.is_available(), kind == "npu" and npu_available(),
                                            local_rank))


def xgboost_device(kind: str) -> str:
    """XGBoost's `device` parameter: "cuda" on GPUs (Ray sets CUDA_VISIBLE_DEVICES per worker),
    else "cpu" (XGBoost has no NPU backend)."""
    return "cuda" if kind == "gpu" else "cpu"


def lightgbm_device(kind: str) -> str:
    """LightGBM's `device_type`: "cuda" on GPUs (needs a LightGBM built with CUDA; the PyPI wheel
    is CPU-only and then fails naming it), else "cpu"."""
    return "cuda" if kind == "gpu" else "cpu"
