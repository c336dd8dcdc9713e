"""Scoring tokens: who may call a deployed model's HTTP routes (`endpoints:score`).

The server issues them (POST /deployments/<app>/token, to a caller whose role has
`endpoints:score`): an ES256 JWT for one deployed version (audience `suanli-scoring:<app>`), with
the caller's name, role and tenant, lasting `DEFAULT_TTL_S` (at most `MAX_TTL_S`). It signs them
with its scoring key, made on first use in its state directory (0600); each deployment's router
and scoring replicas are given only the public half, at deploy time.

Why a signed token rather than the API's own `sl_` token: a replica checks it with no call to the
server (a round trip per request would put the control plane on every payment's path, and the
server's outage would stop scoring), and a replica that is compromised holds no key that can mint
one. The signature is checked once per distinct token; a token already verified costs a dict
lookup and an expiry comparison (`ScoringGate`), which benchmarks/serving.py measures. The price
of verifying offline: a revoked user's scoring token lives until it expires (10 minutes by
default), as with any JWT access token; the scoring client asks for a new one before then.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from runtime.private_files import write_private_file

DEFAULT_TTL_S = 600.0
MAX_TTL_S = 3600.0
SCOPE = "endpoints:score"
ISSUER = "suanli-server"
KEY_FILE = Path("serving") / "scoring-key.pem"
GATE_CACHE = 4096  # verified tokens remembered per replica (cleared when full)


def audience(app: str) -> str:
    """The audience of scoring tokens for the deployed version `app` (its router's application)."""
    return f"suanli-scoring:{app}"


class ScoringKeys:
    """The server's scoring key (ECDSA P-256) in `state_dir/serving/scoring-key.pem`, created on
    first use (0600); `issue` signs tokens, `public_pem` is what deployments verify with."""

    _lock = threading.Lock()

    def __init__(self, state_dir: Path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        path = Path(state_dir) / KEY_FILE
        with self._lock:
            if not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                key = ec.generate_private_key(ec.SECP256R1())
                try:
                    write_private_file(path, key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
                except FileExistsError:
                    pass  # another server on this state directory made it first
        self._key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        self.public_pem = self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo)

    def issue(self, subject: str, role: str, tenant: str, app: str, ttl_s: float = DEFAULT_TTL_S) -> dict:
        """{"token", "expires_at", "app"}: a scoring token for `app` in `subject`'s name. The
        caller (the route) has checked that `subject`'s role may score. ValueError naming ttl_s
        when it is not in (0, MAX_TTL_S]."""
        import jwt

        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s: {ttl_s!r}; give more than 0 and at most {MAX_TTL_S:g} seconds")
        now = time.time()
        claims = {"iss": ISSUER, "aud": audience(app), "sub": subject, "role": role, "tenant": tenant,
                  "scope": SCOPE, "iat": int(now), "exp": now + ttl_s, "jti": uuid.uuid4().hex}
        return {"token": jwt.encode(claims, self._key, algorithm="ES256"), "expires_at": now + ttl_s, "app": app}


class ScoringGate:
    """The check each scoring route makes (router and replicas): `refusal(authorization header)` is
    None for a valid scoring token of this deployment, else the reason (the route answers 401)."""

    def __init__(self, public_pem: bytes, app: str):
        from cryptography.hazmat.primitives import serialization

        self._key = serialization.load_pem_public_key(public_pem)
        self._audience = audience(app)
        self._verified: dict[str, float] = {}  # token -> its expiry (time.time())

    def refusal(self, header: str | None) -> str | None:
        """None when `header` is 'Bearer <a valid, unexpired scoring token for this deployment>',
        else why not (no secret in it)."""
        if not header or header[:7].lower() != "bearer ":
            return ("no token: send 'Authorization: Bearer <scoring token>' (POST /deployments/<app>/token on the "
                    "server, with a role that has endpoints:score)")
        token = header[7:].strip()
        expires = self._verified.get(token)
        if expires is not None:
            if expires > time.time():
                return None
            del self._verified[token]
            return "expired token: ask the server for a new scoring token"
        return self._verify(token)

    def _verify(self, token: str) -> str | None:
        import jwt

        try:
            claims = jwt.decode(token, self._key, algorithms=["ES256"], audience=self._audience, issuer=ISSUER,
                                options={"require": ["exp", "sub", "aud", "iss", "scope"]})
        except jwt.ExpiredSignatureError:
            return "expired token: ask the server for a new scoring token"
        except jwt.InvalidAudienceError:
            return f"token: it is not for this deployment ({self._audience.split(':', 1)[1]}); ask for one for it"
        except jwt.PyJWTError as exc:
            return f"token refused: {type(exc).__name__}"
        if claims["scope"] != SCOPE:
            return f"token: its scope is {str(claims['scope'])[:40]!r}, not {SCOPE}"
        if len(self._verified) >= GATE_CACHE:
            self._verified.clear()
        self._verified[token] = float(claims["exp"])
        return None
