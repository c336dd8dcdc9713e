"""Artifact events the SDK carries out in the caller's process (export and signing, verification
failures, compression, registry changes, deployment) and reports to the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.audit.log import AuditDetailTooLarge
from runtime.server.domain.errors import Forbidden, TooLarge

if TYPE_CHECKING:
    from runtime.server.auth import Identity
    from runtime.server.service import Server

# Each event the SDK may report, and the permission it needs (None: anyone may report it).
# Promote, rollback, withdraw and deploy are done and recorded by the server itself.
ARTIFACT_EVENTS = {
    "artifact-signed": "artifacts:register", "artifact-compressed": "artifacts:compress",
    "artifact-registered": "artifacts:register", "artifact-verify-failed": None,
}


def report(server: Server, identity: Identity, kind: str, detail: dict) -> int:
    """Record the event `kind` with the caller as its actor; its sequence number. Forbidden when
    the caller's role does not allow the action reported."""
    need = ARTIFACT_EVENTS[kind]
    if need and not identity.may(need):
        raise Forbidden.refused(identity, f"{need} ({kind})")
    try:
        return server.events.artifact_reported(identity.name, kind, detail)["seq"]
    except AuditDetailTooLarge as exc:
        raise TooLarge(exc) from None
