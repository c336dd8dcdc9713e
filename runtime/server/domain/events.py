"""The audit log's server-side events: one method per event kind, the only place each is written.

Every record names its actor (an identity, never a field the caller typed) and carries only
ids, names and bounded reasons: never a token, a file's contents or a response body.
"""

from __future__ import annotations

from typing import Any

from runtime.audit.log import AuditLog


class AuditEvents:
    """Writes the server's audit records to `audit`; `refused` (a Prometheus counter labelled by
    status) counts refused requests."""

    def __init__(self, audit: AuditLog, refused=None):
        self.audit = audit
        self.refused = refused

    # ---- access ------------------------------------------------------------------------------
    def login(self, identity) -> None:
        """A token's first use since the server started."""
        self.audit.append("login", identity.name, {"role": identity.role, "token_id": identity.token_id})

    def request_refused(self, actor: str, method: str, path: str, status: int, why: str) -> None:
        """A 401 or 403."""
        if self.refused is not None:
            self.refused.labels(str(status)).inc()
        self.audit.append("request-refused", actor, {"method": method, "path": path, "status": status, "why": why},
                          level="warning", component="api", oversize="digest")

    # ---- accounts ----------------------------------------------------------------------------
    def user_added(self, actor: str, user: str, role: str, tenant: str) -> None:
        self.audit.append("user-added", actor, {"user": user, "role": role, "tenant": tenant}, level="notice")

    def user_revoked(self, actor: str, user: str, tokens_revoked: int) -> None:
        self.audit.append("user-revoked", actor, {"user": user, "tokens_revoked": tokens_revoked}, level="notice")

    def token_created(self, actor: str, user: str, token_id: str, expires_at: float | None = None,
                      **extra: Any) -> None:
        """A token was issued (through the API, or by the local bootstrap with `file`)."""
        detail = {"user": user, "token_id": token_id, **({"expires_at": expires_at} if expires_at is not None else {}), **extra}
        self.audit.append("token-created", actor, detail, level="notice")

    def token_revoked(self, actor: str, user: str, token_id: str) -> None:
        self.audit.append("token-revoked", actor, {"user": user, "token_id": token_id}, level="notice")

    def quota_set(self, actor: str, key: str, limits: dict) -> None:
        self.audit.append("quota-set", actor, {"key": key, "limits": limits}, level="notice")

    # ---- jobs --------------------------------------------------------------------------------
    def job_event(self, event: dict) -> None:
        """A job's state transition or request, as the store reports it (job-queued, job-failed, ...)."""
        level = "warning" if event["kind"] in ("FAILED", "REJECTED") else "info"
        self.audit.append(f"job-{event['kind'].lower()}", event["actor"],
                          {k: event[k] for k in ("job_id", "detail", "attempt", "fence") if event.get(k) is not None},
                          level=level, component="controller" if event["fence"] is not None else "api",
                          oversize="digest")

    # ---- clusters ----------------------------------------------------------------------------
    def cluster_added(self, actor: str, entry) -> None:
        self.audit.append("cluster-added", actor, {"name": entry.name, "address": entry.address, "site": entry.site,
                                                   "tier": entry.tier, "token_secret": entry.token_secret},
                          level="notice")

    def cluster_removed(self, actor: str, name: str) -> None:
        self.audit.append("cluster-removed", actor, {"name": name}, level="notice")

    def cluster_health(self, name: str, health: str, since: float) -> None:
        """A registered cluster became `health` (cluster-lost, cluster-healthy, ...)."""
        self.audit.append(f"cluster-{health}", "federation", {"name": name, "since": since},
                          level="warning" if health == "lost" else "notice")

    # ---- artifacts and deployments -----------------------------------------------------------
    def artifact_reported(self, actor: str, kind: str, detail: dict) -> dict:
        """An artifact event the SDK carried out in the caller's process; the record written."""
        level = "error" if kind.endswith("failed") else "notice"
        return self.audit.append(kind, actor, detail, level=level, component="sdk")

    def deployed(self, actor: str, deployed: dict) -> None:
        self.audit.append("artifact-deployed", actor, {**deployed, "sites": ",".join(deployed["sites"])},
                          component="server")

    def stage_changed(self, actor: str, kind: str, registry: str, changed: dict, reason: str) -> None:
        """A registry version promoted, rolled back or withdrawn through the server."""
        self.audit.append(kind, actor, {"registry": registry, "model": changed["model"], "reason": reason},
                          level="notice", component="server")

    def scoring_token_issued(self, actor: str, app: str, expires_at: float) -> None:
        self.audit.append("scoring-token-issued", actor, {"app": app, "expires_at": expires_at})

    def undeployed(self, actor: str, app: str) -> None:
        self.audit.append("artifact-undeployed", actor, {"app": app}, component="server")

    # ---- the server --------------------------------------------------------------------------
    def server_started(self, actor: str, detail: dict) -> None:
        self.audit.append("server-started", actor, detail, level="notice")

    def server_stopped(self, actor: str, pid: int) -> None:
        self.audit.append("server-stopped", actor, {"pid": pid}, level="notice")
