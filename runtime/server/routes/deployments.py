"""Deployments: serving registry versions on Ray Serve."""

from __future__ import annotations

from fastapi import APIRouter

from runtime.server.auth import Identity
from runtime.server.deps import ServerDep, require
from runtime.server.domain import deployments
from runtime.server.schemas import DeployRequest

router = APIRouter()


@router.post("/deployments", status_code=201)
def deploy_model(body: DeployRequest, server: ServerDep, identity: Identity = require("models:deploy")) -> dict:
    """Deploy a registry version on Ray Serve (a scoring application per site at its edge
    nodes, one in the centre, the edge-first router); 404 unknown, 403 withdrawn, 422 bad
    settings."""
    return deployments.deploy(server, identity, body.registry, body.model, body.version, body.public_key,
                              body.settings)


@router.get("/deployments")
def list_deployments(identity: Identity = require("models:deploy")) -> list[dict]:
    """Each deployed version with its status and its deployments' (router, centre, edge:<site>)."""
    from runtime.serving.deploy import deployed

    return deployed()


@router.delete("/deployments/{name}")
def delete_deployment(name: str, server: ServerDep, identity: Identity = require("models:deploy")) -> dict:
    deployments.undeploy(server, identity, name)
    return {"app": name, "deleted": True}
