"""The ops page: its shell (served without a token, no data in it) and the state it polls."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from runtime.server.auth import Identity
from runtime.server.deps import ServerDep, require
from runtime.server.domain.ops import ops_state

router = APIRouter()
PAGE = Path(__file__).resolve().parent.parent / "ops_page.html"
PAGE_HEADERS = {"Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'; connect-src 'self'"}


@router.get("/ui", include_in_schema=False)
def ops_page() -> FileResponse:
    """The ops page: a shell without data that polls /ui/state with the token it is given."""
    return FileResponse(PAGE, media_type="text/html", headers=PAGE_HEADERS)


@router.get("/ui/state")
def ops_page_state(server: ServerDep, identity: Identity = require("capacity:read")) -> dict:
    """What the ops page shows: clusters with health, capacity per cluster/tier/kind, the queue
    with each job's reason and estimated start, active jobs, quota use (jobs the caller may
    not read are counted, not listed)."""
    return ops_state(server, identity)
