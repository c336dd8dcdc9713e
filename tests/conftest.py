"""Shared fixtures. Ray binds to loopback in every test: the variable is set before Ray is
imported. Emulated clusters are started once per module that needs one."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEMO_EMULATION = REPO / "examples" / "emulated-demo.yaml"


@pytest.fixture(scope="module")
def demo_cluster():
    """The 4-node demo cluster of examples/emulated-demo.yaml (2x2 A100, 1x4 Ascend910B, 1 edge),
    with this process connected as a driver; shut down at the end of the module (a module may
    start its own cluster instead: one Ray per process at a time)."""
    from cluster.emulation import EmulatedCluster, load_emulation

    emulated = EmulatedCluster(load_emulation(DEMO_EMULATION))
    yield emulated
    emulated.shutdown()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared data folder beside the repository), which is absent")
    return path
