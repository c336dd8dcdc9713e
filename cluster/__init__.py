"""Knowing the hardware: device discovery, starting or joining Ray, emulated clusters,
snapshots for the scheduler, capacity reports.

The control-plane names below (`snapshot`, `load_config`, ...) are imported on first
use, so `cluster.devices` works on a GPU node that has torch but not Ray or pydantic.
"""

import importlib
import os

# Ray reads this at import time and must bind to loopback unless an operator says otherwise; set
# here, before any `cluster` submodule can import ray (the same default as
# cluster.ray_cluster.prepare_loopback, which ray_cluster's users call again before starting Ray).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

_LAZY = {
    "prepare_loopback": "cluster.ray_cluster", "SuanliConfig": "cluster.config", "load_config": "cluster.config",
    "ConfigError": "cluster.errors",
}

# `snapshot` is also a submodule's name: bound here (it needs no control-plane package) so that the
# function, not the module, is what `cluster.snapshot` means.
from cluster.snapshot import snapshot  # noqa: E402


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")


__all__ = ["ConfigError", "SuanliConfig", "load_config", "prepare_loopback", "snapshot"]
