"""The Dockerfile of the one suanli image (server and every Ray pod). No Docker engine exists where
these tests run, so the image is never built here: the Dockerfile is parsed with Docker's own
parser (the `dockerfile` package wraps BuildKit's Go parser) and each line checked against the
repository, the chart and the installed Ray and torch it must match."""

import shlex
import sys
from pathlib import Path

import dockerfile
import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "suanli"


@pytest.fixture(scope="module")
def instructions():
    return dockerfile.parse_file(str(REPO / "Dockerfile"))


def of(instructions, cmd):
    return [i for i in instructions if i.cmd == cmd]


def test_the_parser_refuses_a_broken_dockerfile():
    with pytest.raises(dockerfile.GoParseError):
        dockerfile.parse_string("FROM rayproject/ray:2.60.0-py311\nCOPY --chown=1000:100\nRUN <<EOF\n")


def test_built_from_the_ray_image_of_the_charts_ray_version(instructions):
    import ray

    first = instructions[0]
    assert first.cmd == "FROM" and len(of(instructions, "FROM")) == 1  # one stage: this is the image
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = chart["annotations"]["suanli.io/ray-version"]
    assert first.value == (f"rayproject/ray:{version}-py{sys.version_info.major}{sys.version_info.minor}",)
    assert version == ray.__version__ == "2.60.0"
    install = " ".join(r.value[0] for r in of(instructions, "RUN"))
    assert f'"ray=={version}"' in install  # pip keeps the image's own Ray


def test_every_copied_path_exists_and_passes_the_dockerignore(instructions):
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    copied = []
    for copy in of(instructions, "COPY"):
        assert copy.flags == ("--chown=1000:100",)  # the image's `ray` user owns the source pip builds in
        *sources, _destination = copy.value
        copied += sources
    for source in copied:
        assert (REPO / source).exists(), source
        assert source in allowed, f"{source} is copied but .dockerignore leaves it out of the context"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= set(copied)  # every package suanli installs
    assert project["project"]["readme"] in copied and "pyproject.toml" in copied


def test_torch_is_the_cpu_build_pinned_by_the_constraints(instructions):
    import torch

    constraints = (REPO / ".ci" / "constraints.txt").read_text()
    [pin] = [line for line in constraints.splitlines() if line.startswith("torch==")]
    assert torch.__version__.split("+")[0] == pin.removeprefix("torch==")
    [arg] = of(instructions, "ARG")
    assert arg.value == ("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",)
    [torch_run] = [r for r in of(instructions, "RUN") if "torch" in shlex.split(r.value[0])]
    words = shlex.split(torch_run.value[0])
    copied = {dest for c in of(instructions, "COPY") for dest in c.value[-1:]}
    assert words[:2] == ["pip", "install"] and words[words.index("-c") + 1] in copied
    assert words[words.index("--index-url") + 1] == "${TORCH_INDEX_URL}"
    suanli_run = of(instructions, "RUN")[-1].value[0]
    assert "-c /home/ray/suanli/.ci/constraints.txt" in suanli_run  # the same pin when suanli's deps resolve


def test_the_build_fails_unless_what_the_attempt_actor_imports_is_installed(instructions):
    """The last RUN imports what a Ray pod needs; each module named exists in the repository or is
    a declared dependency."""
    command = of(instructions, "RUN")[-1].value[0]
    check = command.split('python -c "', 1)[1].split(";", 1)[0]
    modules = [m.strip() for m in check.removeprefix("import ").split(",")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    dependencies = {d.split(">")[0].split("=")[0].split("[")[0].split("<")[0] for d in project["project"]["dependencies"]}
    for module in modules:
        if module.startswith("runtime."):
            assert (REPO / (module.replace(".", "/") + ".py")).exists(), module
        else:
            assert module in dependencies, module
    assert {"runtime.backends.remote_entry", "runtime.training.attempt", "xgboost", "lightgbm", "onnxruntime"} <= set(modules)


def test_the_command_is_the_real_suanli_server_as_the_charts_user(instructions):
    import typer.main

    from runtime.cli.main import app

    [cmd] = of(instructions, "CMD")
    assert cmd.json and cmd.value[:2] == ("suanli", "server")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["suanli"] == "runtime.cli.main:main"
    server = typer.main.get_command(app).commands["server"]
    options = {opt for param in server.params for opt in param.opts}
    assert {word for word in cmd.value if word.startswith("--")} <= options
    [entrypoint] = of(instructions, "ENTRYPOINT")
    assert entrypoint.json and entrypoint.value == ()  # KubeRay and the chart give their own commands
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    [user] = of(instructions, "USER")
    assert user.value == (str(values["podSecurityContext"]["runAsUser"]),)
    owner = f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    assert all(c.flags == (f"--chown={owner}",) for c in of(instructions, "COPY"))
