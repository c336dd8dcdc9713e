"""Deployments: a registry version served on Ray Serve (a scoring application per site at its
edge nodes, one in the centre, the edge-first router), and taking one down. Both are audited."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runtime.server.domain.admission import resolve_dataset
from runtime.server.domain.errors import Forbidden, Invalid, NotFound

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server
    from runtime.serving.deploy import ServeSettings


def deploy(server: Server, identity: Identity, registry_path: str, model: str, version: int | str,
           public_key: str | None, settings: ServeSettings) -> dict:
    """Deploy `model` `version` of the registry at `registry_path` (a directory on the server).
    NotFound for an unknown registry, model or version; Forbidden for a withdrawn one; Invalid
    for settings the cluster cannot meet."""
    from runtime.artifacts.registry import Registry
    from runtime.serving.deploy import deploy_version

    root = resolve_dataset(registry_path, server.options.data_dirs, field="registry", output=True)
    if not (Path(root) / "registry.db").is_file():
        raise NotFound(f"registry: {root} holds no registry (registry.db); register a model first")
    registry = Registry(root, public_key)
    try:
        deployed = deploy_version(registry, model, version, identity.name, settings, server.options.serve_port)
    except KeyError as exc:
        raise NotFound(str(exc).strip("'\"")) from None
    except PermissionError as exc:
        raise Forbidden(str(exc)) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    finally:
        registry.close()
    server.events.deployed(identity.name, deployed)
    return deployed


def undeploy(server: Server, identity: Identity, name: str) -> None:
    """Take the application `name` down; NotFound when nothing of that name is deployed."""
    from runtime.serving.deploy import deployed, undeploy

    if name not in {d["app"] for d in deployed()}:
        raise NotFound(f"deployment: no application {name!r}")
    undeploy(name)
    server.events.undeployed(identity.name, name)
