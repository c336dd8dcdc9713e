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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL 15 server on loopback (as the `postgres` OS user when run as root),
    stopped at the end of the session. CI installs PostgreSQL; a missing one fails, never skips."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    assert (PG_BIN / "initdb").exists(), f"PostgreSQL 15 is needed at {PG_BIN} (.ci/run installs it)"
    root = Path(tempfile.mkdtemp(prefix="suanli-pg-"))  # not under pytest's 0700 tree: postgres must enter it
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "suanli"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://suanli@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
