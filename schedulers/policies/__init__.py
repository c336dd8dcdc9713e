"""Placement policies, one per file, behind `schedulers.policies.base.Policy`."""

from schedulers.policies.base import Policy, PoolOptions, RoundContext
from schedulers.policies.fair import FairPolicy
from schedulers.policies.fifo import FifoPolicy
from schedulers.policies.gavel_las import GavelLasPolicy
from schedulers.policies.hetero import HeteroPolicy
from schedulers.policies.las import LasPolicy
from schedulers.policies.packing import PackingPolicy

POLICIES: dict[str, type[Policy]] = {
    "fifo": FifoPolicy,
    "packing": PackingPolicy,
    "hetero": HeteroPolicy,
    "las": LasPolicy,
    "fair": FairPolicy,
    "gavel-las": GavelLasPolicy,
}


def make_policy(name: str, seed: int = 0) -> Policy:
    """A fresh policy by name; ValueError naming the allowed names otherwise."""
    if name not in POLICIES:
        raise ValueError(f"policy: {name!r} is not one of {', '.join(POLICIES)}")
    cls = POLICIES[name]
    return cls(seed=seed) if cls is FifoPolicy else cls()


__all__ = ["POLICIES", "Policy", "PoolOptions", "RoundContext", "make_policy"]
