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




@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL 15 server on loopback (as the `postgres` OS user when run as root),
    stopped at the end of the session. CI installs PostgreSQL; a missing one fails, never skips."""
    from benchmarks._postgres import throwaway_postgres

    with throwaway_postgres(fsync=False) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, driven by Playwright), closed at the end of the module: while
    Playwright's sync API is open it runs an asyncio loop in this thread, and Ray Serve's handles
    then refuse their sync calls, so it must not outlive the module. CI installs Chromium; a
    missing one fails, never skips."""
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is needed (apt-get install chromium; .ci/run installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield launched
        launched.close()
