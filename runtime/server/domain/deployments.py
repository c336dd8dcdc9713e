"""Deployments: a registry version served on Ray Serve (a scoring application per site at its
edge nodes, one in the centre, the edge-first router), and taking one down. Both are audited."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from runtime.server.domain.admission import resolve_dataset
from runtime.server.domain.errors import DomainError, Forbidden, Invalid, NotFound, for_status, one_line

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server
    from runtime.serving.deploy import ServeSettings

log = logging.getLogger(__name__)


def deploy(server: Server, identity: Identity, registry_path: str, model: str, version: int | str,
           settings: ServeSettings) -> dict:
    """Deploy `model` `version` of the registry at `registry_path` (a directory on the server),
    its signature verified with the server's pinned key. NotFound for an unknown registry, model or
    version; Forbidden for a withdrawn one; Conflict without a pinned key; Invalid for settings the
    cluster cannot meet. Logged: verified and served (INFO), or refused and why (WARNING)."""
    try:
        deployed = _deploy(server, identity, registry_path, model, version, settings)
    except DomainError as exc:
        log.warning("deployment of %s version %s refused (%s): %s", one_line(model, 80), one_line(version, 20),
                    type(exc).__name__, exc.message)
        raise
    log.info("deployment of %s (model %s) verified and served as %s at sites %s", one_line(model, 80), deployed["model"],
             deployed["app"], ",".join(deployed["sites"]) or "-")
    server.events.deployed(identity.name, deployed)
    return deployed


def _deploy(server: Server, identity: Identity, registry_path: str, model: str, version: int | str,
            settings: ServeSettings) -> dict:
    from runtime.artifacts.registry import RegistryRefused, open_registry, trusted_key
    from runtime.serving.deploy import deploy_version
    from runtime.serving.tokens import ScoringKeys

    root = resolve_dataset(registry_path, server.options.data_dirs, field="registry", output=True)
    try:
        registry = open_registry(root, trusted_key(server.state_dir, server.options.signing_public_key))
    except RegistryRefused as exc:
        raise for_status(exc.status, exc) from None
    try:
        return deploy_version(registry, model, version, identity.name, settings,
                              ScoringKeys(server.state_dir).public_pem, server.options.serve_port)
    except KeyError as exc:
        raise NotFound(str(exc).strip("'\"")) from None
    except PermissionError as exc:
        raise Forbidden(str(exc)) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    finally:
        registry.close()


def scoring_token(server: Server, identity: Identity, app: str) -> dict:
    """A scoring token for the deployed version `app` (its routes need one), in the caller's
    name; NotFound when nothing of that name is deployed."""
    from runtime.serving.deploy import deployed
    from runtime.serving.tokens import ScoringKeys

    if app not in {d["app"] for d in deployed()}:
        raise NotFound(f"deployment: no application {app!r}")
    issued = ScoringKeys(server.state_dir).issue(identity.name, identity.role, identity.tenant, app)
    server.events.scoring_token_issued(identity.name, app, issued["expires_at"])
    return issued


def change_stage(server: Server, identity: Identity, action: str, registry_path: str, model: str,
                 version: int | None, reason: str) -> dict:
    """Promote, roll back or withdraw a version in a registry on the server, as the caller (whose
    role the route checked), recorded in the registry and the audit log."""
    from runtime.artifacts import registry as models

    root = resolve_dataset(registry_path, server.options.data_dirs, field="registry", output=True)
    try:
        changed = models.apply_stage_change(root, models.trusted_key(server.state_dir, server.options.signing_public_key),
                                            action, model, version, identity.name, reason)
    except models.RegistryRefused as exc:
        raise for_status(exc.status, exc) from None
    server.events.stage_changed(identity.name, models.STAGE_EVENTS[action], str(root), changed, reason)
    return changed


def undeploy(server: Server, identity: Identity, name: str) -> None:
    """Take the application `name` down; NotFound when nothing of that name is deployed."""
    from runtime.serving.deploy import deployed, undeploy

    if name not in {d["app"] for d in deployed()}:
        raise NotFound(f"deployment: no application {name!r}")
    undeploy(name)
    log.info("deployment %s taken down", name)
    server.events.undeployed(identity.name, name)
