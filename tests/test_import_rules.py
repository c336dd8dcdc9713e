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
SCHEDULERS_ALLOWED_TOP = {"numpy", "scipy", "numba", "schedulers", "__future__"}  # scipy: the LP of gavel-las; numba: engine.compiled
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
# ---- the rules of docs/architecture.md ---------------------------------------------------------
SERVER = REPO / "runtime" / "server"
WEB_FRAMEWORKS = {"fastapi", "starlette"}


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """The full dotted names `path` imports (relative imports resolved against its package under `root`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_schedulers_and_kernels_import_without_ray_fastapi_or_pydantic():
    """Every module of both packages imports in a process where ray, fastapi, starlette and
    pydantic cannot be imported at all (transitive imports included)."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys
BLOCKED = {"ray", "fastapi", "pydantic", "starlette"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} may not be imported here")
sys.meta_path.insert(0, Block())
import kernels, schedulers
count = 0
for package in (schedulers, kernels):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        count += 1
print(count)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= len(modules("schedulers")) + len(modules("kernels")) - 4  # less __init__s


def test_only_the_server_imports_fastapi():
    """FastAPI is the server's business; the serving router's Starlette is fine."""
    bad = {str(p.relative_to(REPO)): sorted(imports_of(p) & {"fastapi"})
           for package in ("runtime", "cluster", "schedulers", "kernels") for p in modules(package)
           if not p.is_relative_to(SERVER) and "fastapi" in imports_of(p)}
    assert bad == {}


def test_no_route_module_imports_another():
    routes = sorted((SERVER / "routes").glob("*.py"))
    names = {f"runtime.server.routes.{p.stem}" for p in routes if p.stem != "__init__"}
    assert len(names) >= 8, names
    bad = {p.name: sorted(n for n in imported_modules(p) if n in names or n == "runtime.server.routes"
                          or n.startswith("runtime.server.routes."))
           for p in routes}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_domain_knows_nothing_of_http():
    """runtime/server/domain/ imports neither FastAPI/Starlette nor the app, routes, deps or schemas."""
    http_layer = ("runtime.server.app", "runtime.server.routes", "runtime.server.deps", "runtime.server.schemas")
    domain = sorted((SERVER / "domain").rglob("*.py"))
    assert domain
    bad = {str(p.relative_to(REPO)): sorted(n for n in imported_modules(p)
                                            if n.split(".")[0] in WEB_FRAMEWORKS or n.startswith(http_layer))
           for p in domain}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_server_writes_audit_records_in_one_place():
    """Within runtime/server only domain/events.py appends to the audit log, one method per kind."""
    writers = sorted(str(p.relative_to(REPO)) for p in SERVER.rglob("*.py") if "audit.append(" in p.read_text())
    assert writers == ["runtime/server/domain/events.py"]
    kinds = [line.split('append("')[1].split('"')[0] for line in (SERVER / "domain" / "events.py").read_text()
             .splitlines() if 'audit.append("' in line]
    assert kinds and len(kinds) == len(set(kinds)), kinds


def test_the_control_plane_reaches_ray_only_through_its_backends():
    """The controller, the store, the audit log and the server's domain never import Ray: the
    controller acts through `ClusterBackend` (runtime/backends/)."""
    rooms = [REPO / "runtime" / name for name in ("controller", "store", "audit")] + [SERVER / "domain"]
    bad = {str(p.relative_to(REPO)) for room in rooms for p in room.rglob("*.py") if "ray" in imports_of(p)}
    assert bad == set()


def test_the_rule_checkers_catch_violations(tmp_path):
    route = tmp_path / "runtime" / "server" / "routes" / "x.py"
    route.parent.mkdir(parents=True)
    route.write_text("from . import jobs\nfrom runtime.server.routes.ops import router\nimport fastapi\n")
    names = imported_modules(route, root=tmp_path)
    assert {"runtime.server.routes.jobs", "runtime.server.routes.ops", "fastapi"} <= names


# The store's tables and the one module of runtime/store/ that writes each (architecture.md, `store/`).
TABLE_OWNERS = {
    "meta": "database.py", "jobs": "jobs.py", "events": "jobs.py", "attempts": "attempts.py",
    "checkpoints": "checkpoints.py", "log_lines": "logs.py", "quotas": "quotas.py", "waiting": "waiting.py",
    "users": "accounts.py", "tokens": "accounts.py", "leases": "lease.py", "clusters": "clusters.py",
    "audit_heads": "audit_heads.py",
}


def table_writes(path: Path) -> set[str]:
    """The store tables `path` writes with SQLAlchemy: insert(T), update(T), delete(T) and
    T.insert(), T.update(), T.delete(), T written as a name or as schema.T."""
    def table(node) -> str | None:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        return name if name in TABLE_OWNERS else None

    written = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("insert", "update", "delete") and node.args:
            written.add(table(node.args[0]))
        elif isinstance(func, ast.Attribute) and func.attr in ("insert", "update", "delete") and not node.args:
            written.add(table(func.value))
    return written - {None}


def test_each_store_table_is_written_by_its_own_module_alone():
    """One store per table: outside the owner module no code writes a table (another table's
    store reaches it through the owner's functions, inside one transaction)."""
    writers = {}
    for path in sorted((REPO / "runtime").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py")):
        for name in table_writes(path):
            writers.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert writers == {name: {f"runtime/store/{owner}"} for name, owner in TABLE_OWNERS.items()}


def test_one_place_builds_an_onnx_runtime_session():
    builders = sorted(str(p.relative_to(REPO)) for p in (REPO / "runtime").rglob("*.py")
                      if "InferenceSession(" in p.read_text())
    assert builders == ["runtime/artifacts/load.py"]


def test_the_serving_router_does_not_import_the_replicas():
    assert "runtime.serving.replica" not in imported_modules(REPO / "runtime" / "serving" / "router.py")


def test_the_table_writer_checker_catches_writes(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("from sqlalchemy import insert, update\nfrom runtime.store import schema\n"
                      "insert(jobs).values(id=1)\nupdate(schema.attempts)\nquotas.delete().where(1)\nselect(users)\n")
    assert table_writes(module) == {"jobs", "attempts", "quotas"}
