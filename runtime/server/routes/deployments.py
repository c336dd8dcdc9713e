"""Deployments: serving registry versions on Ray Serve."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends

from runtime.server.auth import Identity
from runtime.server.deps import ServerDep, may_change_stage, require
from runtime.server.domain import deployments
from runtime.server.schemas import DeployRequest, RegistryChange

router = APIRouter()


@router.post("/deployments", status_code=201)
def deploy_model(body: DeployRequest, server: ServerDep, identity: Identity = require("models:deploy")) -> dict:
    """Deploy a registry version on Ray Serve (a scoring application per site at its edge
    nodes, one in the centre, the edge-first router); 404 unknown, 403 withdrawn, 422 bad
    settings."""
    return deployments.deploy(server, identity, body.registry, body.model, body.version, body.settings)


@router.post("/deployments/{name}/token", status_code=201)
def scoring_token(name: str, server: ServerDep, identity: Identity = require("endpoints:score")) -> dict:
    """A scoring token for deployed version `name` (its routes need one), in the caller's name."""
    return deployments.scoring_token(server, identity, name)


@router.post("/registry/{action}")
def registry_change(action: Literal["promote", "rollback", "withdraw"], body: RegistryChange, server: ServerDep,
                    identity: Identity = Depends(may_change_stage)) -> dict:
    """Promote, roll back or withdraw a version in a registry on the server (its role checked:
    artifacts:promote or artifacts:withdraw), recorded as the caller in the registry and the audit log."""
    return deployments.change_stage(server, identity, action, body.registry, body.model, body.version, body.reason)


@router.get("/deployments")
def list_deployments(identity: Identity = require("models:deploy")) -> list[dict]:
    """Each deployed version with its status and its deployments' (router, centre, edge:<site>)."""
    from runtime.serving.deploy import deployed

    return deployed()


@router.delete("/deployments/{name}")
def delete_deployment(name: str, server: ServerDep, identity: Identity = require("models:deploy")) -> dict:
    deployments.undeploy(server, identity, name)
    return {"app": name, "deleted": True}
