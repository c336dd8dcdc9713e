"""The HTTP API (FastAPI): every server serves it; only the lease holder's controller acts on jobs.

`create_app` puts together the middleware (body size, authentication), the one mapping from
errors to statuses, and one router per feature (runtime/server/routes/). Errors are JSON
`{"detail": "field: what is wrong and the fix"}`: one bounded line (the SDK and CLI print it).
An unexpected exception is a 500 whose detail holds only an error id; its text and traceback go
to the server's log under that id, never to the caller.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from runtime.server.auth import AuthError
from runtime.server.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    first_validation_error,
    one_line,
)
from runtime.server.routes import accounts, audit, clusters, deployments, health, jobs, ops, quotas

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 32 * 2**20  # a request body (a pickled train_fn included) is refused above this
PUBLIC_PATHS = frozenset({"/healthz", "/ui"})  # /ui: the ops page's shell, no data in it
STATUS = {Invalid: 422, NotFound: 404, Conflict: 409, Forbidden: 403, TooLarge: 413}  # the one mapping of domain errors
ROUTERS = (health, jobs, quotas, accounts, clusters, deployments, audit, ops)


def create_app(server) -> FastAPI:
    """The API of `server` (a `runtime.server.service.Server`). Every route needs a valid token
    except /healthz and /ui (and /metrics with `--metrics-public`); each checks its permission."""
    from runtime import __version__

    app = FastAPI(title="suanli", version=__version__,
                  description="One control plane for suanli: jobs, their events and logs, capacity, accounts, audit.")
    app.state.server = server
    app.state.public_paths = PUBLIC_PATHS | ({"/metrics"} if server.options.metrics_public else set())
    app.middleware("http")(authenticate)
    install_error_mapping(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app


def install_error_mapping(app: FastAPI) -> None:
    """Map domain errors to their statuses (a refusal is audited), a request that fails
    validation to 422 with its first error, and anything else to a 500 with an error id."""
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected_error)


async def authenticate(request: Request, call_next):
    """Refuse oversized bodies (413) and, off the public paths, requests without a valid token
    (401, audited); the caller's identity goes to `request.state.identity`."""
    length = request.headers.get("content-length")
    if length and not length.isdigit():
        return JSONResponse(status_code=400, content={"detail": "Content-Length: not a whole number of bytes"})
    if (length and int(length) > MAX_BODY_BYTES) or (request.method in ("POST", "PUT") and length is None
                                                      and request.headers.get("transfer-encoding")):
        return JSONResponse(status_code=413, content={"detail": f"body: larger than {MAX_BODY_BYTES} bytes, or "
                                                      "sent without a Content-Length; send at most that"})
    if request.url.path in request.app.state.public_paths:
        return await call_next(request)
    server = request.app.state.server
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    try:
        request.state.identity = await run_in_threadpool(server.authenticate, token)
    except AuthError as exc:
        reason = one_line(exc)
        await run_in_threadpool(server.events.request_refused, "anonymous", request.method, request.url.path, 401,
                                reason)
        return JSONResponse(status_code=401, content={"detail": f"unauthorized: {reason}"},
                            headers={"WWW-Authenticate": "Bearer"})
    return await call_next(request)


def domain_error(request: Request, exc: DomainError) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 422)
    if isinstance(exc, Forbidden):
        identity = getattr(request.state, "identity", None)
        request.app.state.server.events.request_refused(identity.name if identity else "anonymous", request.method,
                                                        request.url.path, 403, exc.why)
    return JSONResponse(status_code=status, content={"detail": exc.message})


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": first_validation_error(exc)})


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    job = request.path_params.get("job_id")
    log.error("error %s: %s %s raised %s", error_id, request.method, one_line(request.url.path, 200),
              type(exc).__name__, exc_info=exc, extra={"job": one_line(job, 40) if job else None})
    return JSONResponse(status_code=500, content={"detail": f"internal error {error_id}: the server could not "
                                                  "answer; its log names the cause under this id"})
