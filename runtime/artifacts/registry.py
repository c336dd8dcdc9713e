"""The model registry: signed artifacts by name and version in a local directory, with stages
(staging, production, archived, withdrawn), older versions kept for rollback, and a record of
who did what and when (JR/T 0221 7.4; REQUIREMENTS 10.2 d: withdrawn models are recorded).

Every path in verifies the signature (and that ONNX Runtime can open the model) before anything
is stored; every path out verifies it again before loading. A refused artifact leaves the
registry unchanged.

Stage changes that decide what is served (promote, rollback, withdraw) are made by the server
(`change_stage`, behind the routes under /registry), which checks the caller's role, records the
caller as the actor and writes the audit log; the key they are verified with is the one the
server pins (`trusted_key`), never one a caller names.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.artifacts.load import LoadedModel, load_artifact
from runtime.artifacts.signing import SignatureError, verify_directory

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL, version INTEGER NOT NULL, stage TEXT NOT NULL, created REAL NOT NULL,
    created_by TEXT NOT NULL, path TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS registry_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    name TEXT NOT NULL, version INTEGER NOT NULL, detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    stage: str
    created: float
    created_by: str
    path: str
    note: str

    @property
    def model_id(self) -> str:
        return f"{self.name}:v{self.version}"


class Registry:
    """Artifacts under `root/<name>/v<version>/`, indexed in `root/registry.db`."""

    def __init__(self, root: str | Path, public_key: str | Path | None = None, on_event=None):
        """`on_event(action, name, version, detail)` is told each change and refused artifact (the
        SDK sends them to the server's audit log)."""
        self.on_event = on_event
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_key = public_key
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "registry.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _event(self, actor, action, name, version, detail="") -> None:
        self._db.execute("INSERT INTO registry_events(at, actor, action, name, version, detail) VALUES (?,?,?,?,?,?)",
                         (time.time(), actor, action, name, version, detail))
        if self.on_event:
            self.on_event(action, name, version, detail)

    def register(self, artifact_dir: str | Path, name: str, actor: str) -> ModelVersion:
        """Verify, load-check and copy an artifact in as the next version of `name` (stage staging).
        ValueError naming `name` unless it is 1-63 lowercase letters, digits, '.', '_' or '-'."""
        if not MODEL_NAME.match(name) or ".." in name:
            raise ValueError(f"name: {name!r} must be 1-63 lowercase letters, digits, '.', '_' or '-' (no '..', no '/')")
        source = Path(artifact_dir)
        try:
            verify_directory(source, self.public_key)
            load_artifact(source, self.public_key)  # a corrupt ONNX file is refused here, before any change
        except (SignatureError, ValueError) as exc:
            if self.on_event:
                self.on_event("verify-failed", name, 0, str(exc))
            raise
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
            version = (row[0] or 0) + 1
            target = self.root / name / f"v{version}"
            staging = self.root / name / f".incoming-v{version}"
            try:
                shutil.copytree(source, staging)
                verify_directory(staging, self.public_key)  # the copy is what will be served
                staging.rename(target)
                self._db.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?)",
                                 (name, version, "staging", time.time(), actor, str(target), ""))
                self._event(actor, "register", name, version, f"from {source}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                shutil.rmtree(staging, ignore_errors=True)
                shutil.rmtree(target, ignore_errors=True)
                raise
        return self.version(name, version)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        query = "SELECT * FROM models" + (" WHERE name = ?" if name else "") + " ORDER BY name, version"
        with self._lock:
            rows = self._db.execute(query, (name,) if name else ()).fetchall()
        return [ModelVersion(*r) for r in rows]

    def version(self, name: str, version: int | str = "production") -> ModelVersion:
        """A version by number, or the one in stage `production`/`staging`."""
        with self._lock:
            if isinstance(version, int):
                row = self._db.execute("SELECT * FROM models WHERE name = ? AND version = ?", (name, version)).fetchone()
            else:
                row = self._db.execute("SELECT * FROM models WHERE name = ? AND stage = ? ORDER BY version DESC",
                                       (name, version)).fetchone()
        if row is None:
            raise KeyError(f"model: no {name!r} version {version!r} in the registry")
        return ModelVersion(*row)

    def get(self, name: str, version: int | str = "production", kind: str = "cpu") -> LoadedModel:
        """Load a version for inference, after verifying its signature. Withdrawn ones are refused."""
        found = self.version(name, version)
        if found.stage == "withdrawn":
            raise PermissionError(f"model: {found.model_id} was withdrawn ({found.note}); it is never served")
        try:
            return load_artifact(found.path, self.public_key, kind=kind)
        except (SignatureError, ValueError) as exc:
            if self.on_event:
                self.on_event("verify-failed", name, found.version, str(exc))
            raise

    def record_deploy(self, name: str, version: int, actor: str, detail: str) -> None:
        """Record that `actor` deployed a version (and where) in the registry's history."""
        self._event(actor, "deploy", name, version, detail)

    def promote(self, name: str, version: int, actor: str) -> ModelVersion:
        """Make `version` the production one; the previous production version is archived (kept)."""
        target = self.version(name, version)
        if target.stage == "withdrawn":
            raise PermissionError(f"model: {target.model_id} was withdrawn and cannot be promoted")
        verify_directory(target.path, self.public_key)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE models SET stage = 'archived' WHERE name = ? AND stage = 'production'", (name,))
            self._db.execute("UPDATE models SET stage = 'production' WHERE name = ? AND version = ?", (name, version))
            self._event(actor, "promote", name, version, "online")
            self._db.execute("COMMIT")
        return self.version(name, version)

    def rollback(self, name: str, actor: str) -> ModelVersion:
        """Promote the most recent archived version back to production."""
        previous = [v for v in self.versions(name) if v.stage == "archived"]
        if not previous:
            raise KeyError(f"model: {name!r} has no archived version to roll back to")
        return self.promote(name, previous[-1].version, actor)

    def withdraw(self, name: str, version: int, actor: str, reason: str) -> ModelVersion:
        """Take a version out of service for good; its id, the reason and the actor are recorded."""
        if not reason.strip():
            raise ValueError("reason: say why the model is withdrawn")
        self.version(name, version)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE models SET stage = 'withdrawn', note = ? WHERE name = ? AND version = ?",
                             (reason, name, version))
            self._event(actor, "withdraw", name, version, reason)
            self._db.execute("COMMIT")
        return self.version(name, version)

    def events(self, name: str | None = None) -> list[dict]:
        query = "SELECT seq, at, actor, action, name, version, detail FROM registry_events"
        with self._lock:
            rows = self._db.execute(query + (" WHERE name = ?" if name else "") + " ORDER BY seq",
                                    (name,) if name else ()).fetchall()
        return [dict(zip(("seq", "at", "actor", "action", "name", "version", "detail"), r, strict=True)) for r in rows]

    def withdrawn(self) -> list[str]:
        """Ids of every withdrawn model (REQUIREMENTS 10.2 d)."""
        return [v.model_id for v in self.versions() if v.stage == "withdrawn"]


TRUSTED_KEY_FILE = Path("signing") / "trusted-public.pem"  # under the server's state directory
STAGE_CHANGES = {"promote": "artifacts:promote", "rollback": "artifacts:promote", "withdraw": "artifacts:withdraw"}
STAGE_EVENTS = {"promote": "artifact-promoted", "rollback": "artifact-rolled-back", "withdraw": "artifact-withdrawn"}


class RegistryRefused(Exception):
    """A registry change or deploy the server refuses; `status` is the HTTP status, the message
    names the field and the fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def trusted_key(state_dir: Path, configured: Path | None) -> Path:
    """The public key every artifact the server registers, promotes or deploys must verify with:
    `configured` (`suanli server --signing-public-key`), else `state_dir/signing/trusted-public.pem`.
    RegistryRefused (409) naming both when neither exists or it is not an ECDSA P-256 public key."""
    from runtime.artifacts.signing import _check_key

    path = Path(configured).expanduser().resolve() if configured else state_dir / TRUSTED_KEY_FILE
    if not path.is_file():
        raise RegistryRefused(409, f"signing key: this server pins no trusted signing key ({path} is absent); start it "
                                   f"with --signing-public-key FILE or put the public key at {state_dir / TRUSTED_KEY_FILE}")
    try:
        _check_key(path, private=False)
    except ValueError as exc:
        raise RegistryRefused(409, f"signing key: {exc}") from None
    return path


def open_registry(root: Path, key: Path) -> Registry:
    """The registry in `root` (a directory the server resolved), verified with the pinned `key`;
    RegistryRefused (404) when `root` holds none."""
    if not (Path(root) / "registry.db").is_file() or not os.access(root, os.W_OK):
        raise RegistryRefused(404, f"registry: {root} holds no registry (registry.db) the server can write; "
                                   "register a model first")
    return Registry(root, key)


def change_stage(registry: Registry, action: str, name: str, version: int | None, actor: str,
                 reason: str = "") -> dict:
    """Promote `version` (rollback: the newest archived one) or withdraw it, as `actor` (recorded in
    the registry's history); the version after the change as a dict. RegistryRefused naming the
    field: 404 unknown version, 403 a withdrawn one promoted, 422 a missing reason, version or a
    signature that no longer verifies."""
    try:
        if action == "rollback":
            changed = registry.rollback(name, actor)
        elif version is None:
            raise RegistryRefused(422, f"version: give the version number to {action}")
        elif action == "promote":
            changed = registry.promote(name, version, actor)
        elif action == "withdraw":
            changed = registry.withdraw(name, version, actor, reason)
        else:
            raise RegistryRefused(404, f"action: {action!r} is not one of {', '.join(STAGE_CHANGES)}")
    except KeyError as exc:
        raise RegistryRefused(404, str(exc).strip("'\"")) from None
    except PermissionError as exc:
        raise RegistryRefused(403, str(exc)) from None
    except (ValueError, SignatureError) as exc:
        raise RegistryRefused(422, str(exc)) from None
    return {**asdict(changed), "model": changed.model_id}


def apply_stage_change(root: Path, key: Path, action: str, name: str, version: int | None, actor: str,
                       reason: str = "") -> dict:
    """`change_stage` on the registry in `root` (opened with the pinned `key`, closed after)."""
    registry = open_registry(root, key)
    try:
        return change_stage(registry, action, name, version, actor, reason)
    finally:
        registry.close()
