"""Running work: the Python SDK and CLI, job specs and their store, the controller, training,
and (later) compression, inference and signed model artifacts.

`Client` and `TrainingJob` are imported lazily so that importing `runtime` (for the CLI, say)
does not start Ray or load torch.
"""

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("suanli")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["Client", "FeatureJob", "FeatureResult", "JobHandle", "JobState", "TrainingJob", "TrainingResult"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "JobHandle", "TrainingResult", "FeatureResult"):
        from runtime import client

        return getattr(client, name)
    if name in ("TrainingJob", "JobState", "FeatureJob"):
        from runtime import specs

        return getattr(specs, name)
    raise AttributeError(name)
