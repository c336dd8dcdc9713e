"""Identities, tokens and the one permission table (JR/T 0263 10.4, JR/T 0221 7.4).

A token is `sl_<id>_<secret>`; the store keeps only the sha256 of the secret, its expiry and
whether it was revoked. Every route needs a valid token except /healthz (and /metrics when the
server is told so). The role of the token's user decides what it may do, from PERMISSIONS alone;
the actor recorded anywhere is this identity, never a field the caller typed. There is no default
admin: a local server creates one admin, for the OS user that runs it, on its first start.

Identities from an identity provider (JWTs) live in a namespace of their own: their name is
`jwt:<issuer>/<sub>`, which no local user name can be (local names never hold ':' or '/'), so a
JWT whose `sub` is a local user's name is not that user: it cannot read their jobs, revoke their
tokens or mint a local token at all (`token_owner`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.data.roots import TENANT_NAME
from runtime.private_files import write_private_file
from runtime.store.accounts import AccountStore

ROLES = ("admin", "data-engineer", "algorithm-engineer", "business-analyst", "operator", "auditor")

# What each role may do. `:own` reads and cancels only the caller's jobs, `:tenant` the caller's
# tenant's, `:all` everyone's. The README prints this table.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"jobs:submit", "jobs:read:all", "jobs:cancel:all", "capacity:read", "metrics:read",
                        "users:manage", "audit:read", "artifacts:compress", "artifacts:register",
                        "artifacts:promote", "artifacts:withdraw", "clusters:manage", "endpoints:score",
                        "datasets:read", "models:deploy"}),
    "data-engineer": frozenset({"datasets:read", "jobs:read:tenant", "capacity:read"}),
    "algorithm-engineer": frozenset({"jobs:submit", "jobs:read:own", "jobs:cancel:own", "artifacts:compress",
                                     "artifacts:register", "capacity:read"}),
    "business-analyst": frozenset({"metrics:read", "endpoints:score"}),
    "operator": frozenset({"capacity:read", "clusters:manage", "artifacts:promote", "artifacts:withdraw",
                           "jobs:read:all", "metrics:read", "models:deploy"}),
    "auditor": frozenset({"audit:read", "jobs:read:all", "metrics:read"}),
}
DEFAULT_TTL_S = 24 * 3600.0
MAX_TTL_S = 90 * 24 * 3600.0
TOKEN_FILE = "admin.token"


class AuthError(Exception):
    """401: no token, or one that is unknown, expired or revoked."""


@dataclass(frozen=True)
class Identity:
    """Who is calling: the user, their role and tenant, and the token's id."""

    name: str
    role: str
    tenant: str
    token_id: str
    kind: str = "local"  # "local": a user of the store with an sl_ token; "jwt": an identity provider's

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    def job_scope(self, action: str) -> str | None:
        """The widest scope ('all', 'tenant', 'own') this identity has for jobs:`action`, or None."""
        for scope in ("all", "tenant", "own"):
            if self.may(f"jobs:{action}:{scope}"):
                return scope
        return None

    def can_touch(self, action: str, owner: str, tenant: str) -> bool:
        """Whether jobs:`action` is allowed on a job of `owner` in `tenant`."""
        scope = self.job_scope(action)
        return scope == "all" or (scope == "tenant" and tenant == self.tenant) or (scope == "own" and owner == self.name)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class JwtIssuer:
    """A bank's identity provider (OIDC): JWTs it signed (ES256 or RS256) are accepted with the
    role and tenant from its claims `suanli_role` and `suanli_tenant`; `sub` is the user. They
    cannot be revoked here: keep their lifetime short at the provider."""

    public_key_pem: bytes
    issuer: str
    audience: str

    def identity(self, token: str) -> Identity:
        import jwt

        try:
            claims = jwt.decode(token, self.public_key_pem, algorithms=["ES256", "RS256"], audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "sub", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"JWT refused: {exc}") from None
        role = claims.get("suanli_role")
        if role not in ROLES:
            raise AuthError(f"JWT refused: claim suanli_role {role!r} is not one of {', '.join(ROLES)}")
        tenant = str(claims.get("suanli_tenant", "default"))
        if not TENANT_NAME.match(tenant):
            raise AuthError(f"JWT refused: claim suanli_tenant {tenant[:80]!r} is not a tenant name (letters, digits, "
                            "'.', '_', '-', starting with a letter or digit)")
        name = jwt_name(self.issuer, str(claims["sub"]))
        return Identity(name, role, tenant,
                        f"jwt:{claims.get('jti') or name}", kind="jwt")


def jwt_name(issuer: str, sub: str) -> str:
    """The name of an identity provider's user: `jwt:<issuer>/<sub>`, never a local user's name."""
    return f"jwt:{issuer}/{sub}"


RESERVED_NAME_CHARS = (":", "/")  # local user names never hold them: `jwt:<issuer>/<sub>` is not local


class Accounts:
    """The rules for users and tokens (roles, names, lifetimes, only a secret's hash stored) over
    the store's accounts (`store`, where listing and revoking are done directly), and, when
    configured, JWTs from an identity provider."""

    def __init__(self, store: AccountStore, jwt_issuer: JwtIssuer | None = None):
        self.store = store
        self.jwt_issuer = jwt_issuer

    def add_user(self, name: str, role: str, tenant: str, created_by: str) -> None:
        """A new user; ValueError naming the field when the role is unknown or the name taken."""
        if role not in ROLES:
            raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
        if not name or any(c in name for c in RESERVED_NAME_CHARS):
            raise ValueError(f"name: {name!r}: a local user's name is not empty and holds no ':' or '/' "
                             "(jwt:<issuer>/<sub> names identity-provider users); choose another")
        self.store.add_user(name, role, tenant, created_by)

    def create_token(self, user: str, ttl_s: float = DEFAULT_TTL_S, label: str = "") -> tuple[str, dict]:
        """(the token, shown once; its record without the secret)."""
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"expires: must be more than 0 and at most {MAX_TTL_S / 86400:g} days")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = time.time()
        self.store.add_token(token_id, user, _hash(secret), now, now + ttl_s, label)
        return f"sl_{token_id}_{secret}", {"id": token_id, "user": user, "created": now, "expires_at": now + ttl_s,
                                           "label": label}

    @staticmethod
    def token_owner(caller: Identity, user: str | None) -> str:
        """Whom a token asked for by `caller` is for (`user`, or the caller): PermissionError saying
        why when `caller` may not have it. An identity-provider (JWT) caller never mints a local
        token, for itself or anyone: its sessions come from its provider, and a local token would
        outlive the provider's revocation. Another user's token needs users:manage."""
        if caller.kind != "local":
            raise PermissionError(f"mint a local token as {caller.name} (a {caller.kind.upper()} identity: get tokens "
                                  "from your identity provider, or ask an admin for a local user)")
        owner = user or caller.name
        if owner != caller.name and not caller.may("users:manage"):
            raise PermissionError(f"create a token for {owner}")
        return owner

    def authenticate(self, token: str | None) -> Identity:
        """The identity of a valid token; AuthError saying why not."""
        if not token:
            raise AuthError("no token: send 'Authorization: Bearer <token>' (SUANLI_TOKEN for the SDK and CLI)")
        if self.jwt_issuer is not None and token.count(".") == 2:
            return self.jwt_issuer.identity(token)
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "sl":
            raise AuthError("malformed token")
        row = self.store.token_with_user(parts[1])
        if row is None or not hmac.compare_digest(row.sha256, _hash(parts[2])):
            raise AuthError("unknown token")
        if row.revoked_at is not None or row.revoked:
            raise AuthError("revoked token")
        if row.expires_at <= time.time():
            raise AuthError("expired token: create a new one with 'suanli token create'")
        return Identity(row.user, row.role, row.tenant, row.id)


def ensure_local_admin(accounts: Accounts, state_dir: Path, os_user: str, min_left_s: float = 3600.0) -> str | None:
    """On a local server: make sure `state_dir/admin.token` holds a valid admin token for the OS
    user (created on first start, renewed when under `min_left_s` from expiry). The token's id
    when one was written, else None."""
    path = state_dir / TOKEN_FILE
    if path.exists():
        try:
            identity = accounts.authenticate(path.read_text().strip())
            expires = accounts.store.token_expiry(identity.token_id)
            if expires - time.time() > min_left_s:
                return None
        except AuthError:
            pass
    known = {u["name"]: u for u in accounts.store.users()}
    if os_user in known and known[os_user]["revoked"]:
        return None  # an admin revoked the local account: no token for it
    if os_user not in known:
        try:
            accounts.add_user(os_user, "admin", "default", created_by="local-bootstrap")
        except ValueError:
            pass  # another server on this state directory created it first
    token, record = accounts.create_token(os_user, label="local admin token (state directory)")
    write_private_file(path, (token + "\n").encode(), replace=True)
    return record["id"]
