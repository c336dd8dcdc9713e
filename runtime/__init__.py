"""Running work: the Python SDK and CLI, job specs and their store, the controller, training,
and (later) compression, inference and signed model artifacts.

`Client` and `TrainingJob` are imported lazily so that importing `runtime` (for the CLI, say)
does not start Ray or load torch.
"""

from typing import Any

__all__ = ["Client", "JobHandle", "JobState", "TrainingJob", "TrainingResult"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "JobHandle", "TrainingResult"):
        from runtime import client

        return getattr(client, name)
    if name in ("TrainingJob", "JobState"):
        from runtime import specs

        return getattr(specs, name)
    raise AttributeError(name)
