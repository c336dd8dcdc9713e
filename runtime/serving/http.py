"""The HTTP helpers the scoring routes share (the replicas' own routes and the router's): reading
a scoring request's JSON body, and the 401 that refuses a scoring token without echoing it.
Starlette, which Ray Serve brings; not FastAPI."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse

from runtime.artifacts.inputs import InputError


def unauthorized(reason: str, model_id: str) -> JSONResponse:
    """401 naming why the scoring token was refused (never echoing it)."""
    return JSONResponse({"error": f"unauthorized: {reason}", "model": model_id}, 401,
                        headers={"WWW-Authenticate": "Bearer"})


async def read_payload(request: Request) -> dict:
    """{"rows", "request_id"} of an HTTP request's body (a request id made up when none is given);
    InputError naming the body unless it is a JSON object."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError(f"body: not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InputError('body: send a JSON object {"rows": [...], "request_id": "optional"}')
    return {"rows": body.get("rows"), "request_id": str(body.get("request_id") or uuid.uuid4())}
