"""Choosing a torch device by name, with an error that names the argument when it cannot be had."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "cpu", argument: str = "device") -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available, else CPU) as a torch.device.

    Raises ValueError naming `argument` for an unknown name or a CUDA device this machine lacks.
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"{argument}: {name!r} asked for, but this machine has no CUDA GPU; use 'cpu' or 'auto'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"{argument}: {name!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device(name)
    raise ValueError(f"{argument}: unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def synchronize(device: torch.device) -> None:
    """Wait for queued work on `device` (a no-op on the CPU), so timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
