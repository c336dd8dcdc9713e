"""The four packages' import rules from ARCHITECTURE.md, checked by parsing every module."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "schedulers": {"ray", "torch", "kubernetes", "runtime", "cluster", "kernels", "pynvml", "psutil",
                   "onnxruntime", "subprocess", "socket", "time", "datetime", "pandas", "yaml", "requests"},
    "cluster": {"runtime", "kernels"},
    "kernels": {"ray", "runtime", "cluster", "kubernetes"},
}
SCHEDULERS_ALLOWED_TOP = {"numpy", "scipy", "schedulers", "__future__"}  # scipy: the LP of gavel-las
# kernels.gpucheck, a GPU node's first check, reads the devices through cluster.devices (NVML).
ALLOWED = {"kernels/gpucheck.py": {"cluster"}}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden(package):
    assert modules(package), f"{package}/ has no modules"
    bad = {
        str(p.relative_to(REPO)): sorted(imports_of(p) & FORBIDDEN[package] - ALLOWED.get(str(p.relative_to(REPO)), set()))
        for p in modules(package)
        if imports_of(p) & FORBIDDEN[package] - ALLOWED.get(str(p.relative_to(REPO)), set())
    }
    assert bad == {}


def test_schedulers_import_only_numpy_and_the_standard_library():
    import sys

    stdlib = set(sys.stdlib_module_names)
    for path in modules("schedulers"):
        extra = imports_of(path) - stdlib - SCHEDULERS_ALLOWED_TOP
        assert not extra, f"{path.relative_to(REPO)} imports {sorted(extra)}"


def test_schedulers_read_no_clock_and_open_no_files():
    for path in modules("schedulers"):
        source = path.read_text()
        for call in ("time.time(", "open(", "datetime.now(", "random.random("):
            assert call not in source, f"{path.relative_to(REPO)} calls {call}"


def test_the_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import ray\nfrom runtime.x import y\n")
    assert imports_of(bad) == {"ray", "runtime"}


BLOCK_CONTROL_PLANE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "fastapi", "pydantic"):
            raise ImportError("blocked for this test: " + name)
sys.meta_path.insert(0, Block())
"""


def test_kernels_and_devices_import_on_a_gpu_node_without_the_control_plane():
    import subprocess
    import sys

    code = BLOCK_CONTROL_PLANE + (
        "import kernels.features, kernels.mlp, kernels.microbench, kernels.scrub, kernels.workloads, kernels.gpucheck\n"
        "import cluster.devices\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('ray', 'fastapi', 'pydantic')]\n"
        "import pydantic\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "ImportError: blocked for this test: pydantic" in out.stderr, out.stderr
