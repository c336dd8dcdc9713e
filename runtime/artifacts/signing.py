"""Signing and verifying model directories with the OpenSSF `model-signing` package.

The signature covers every file in the directory (names and SHA-256 digests) and is stored as
`model.sig` inside it, in the model-signing format with its key-based signer (ECDSA P-256, PEM
keys), so `model_signing verify key` checks suanli's artifacts and suanli checks directories
signed by `model_signing sign key`. Adding, removing or changing any file, or changing the
signature, makes verification fail with an error naming what differs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtime.private_files import write_private_file

SIGNATURE_FILE = "model.sig"
PRIVATE_KEY_ENV = "SUANLI_SIGNING_KEY"
PUBLIC_KEY_ENV = "SUANLI_PUBLIC_KEY"


class SignatureError(Exception):
    """A model directory that does not verify; the message names the file or the signature."""


def generate_keypair(directory: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `private.pem` (created with mode 0600) and `public.pem` (ECDSA P-256) into `directory`."""
    target = Path(directory).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    private_path, public_path = target / "private.pem", target / "public.pem"
    if not overwrite and (private_path.exists() or public_path.exists()):
        raise FileExistsError(f"--dir: {target} already holds keys; pass --overwrite to replace them")
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_file(private_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()), replace=overwrite)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def key_path(explicit: str | Path | None, env: str, what: str) -> Path:
    """The key file given, else the one named by `env`; ValueError naming both when neither exists."""
    chosen = explicit or os.environ.get(env)
    if not chosen:
        raise ValueError(f"{what}: give a key file or set {env}")
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise ValueError(f"{what}: {path} does not exist")
    return path


def _check_key(path: Path, private: bool) -> None:
    data = path.read_bytes()
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{'private' if private else 'public'} key: {path} is not a PEM "
                         f"{'private' if private else 'public'} key ({exc})") from None
    curve = getattr(key, "curve", None)
    if not isinstance(curve, ec.SECP256R1):
        raise ValueError(f"key: {path} must be an ECDSA P-256 key, found {type(key).__name__}")


def _hashing():
    from model_signing import hashing

    # relative to the directory, so the signature stays valid when the directory is copied or moved
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


def sign_directory(directory: str | Path, private_key: str | Path | None = None) -> Path:
    """Sign every file of `directory` with the private key; the written `model.sig`."""
    import model_signing

    target = Path(directory)
    if not target.is_dir():
        raise ValueError(f"directory: {target} is not a directory")
    key = key_path(private_key, PRIVATE_KEY_ENV, "private key")
    _check_key(key, private=True)
    signature = target / SIGNATURE_FILE
    (model_signing.signing.Config().use_elliptic_key_signer(private_key=key)
     .set_hashing_config(_hashing()).sign(target, signature))
    return signature


def verify_directory(directory: str | Path, public_key: str | Path | None = None) -> None:
    """Verify `directory` against its `model.sig`; SignatureError naming the changed, added or
    missing file, or saying the signature does not match the key, otherwise. There is no way
    to skip this check."""
    import model_signing

    target = Path(directory)
    signature = target / SIGNATURE_FILE
    if not target.is_dir():
        raise SignatureError(f"{target}: not a directory")
    if not signature.is_file():
        raise SignatureError(f"{target}: has no {SIGNATURE_FILE}; unsigned models are never loaded")
    links = [p for p in target.rglob("*") if p.is_symlink()]
    if links:
        raise SignatureError(f"{links[0]}: an artifact holds no symbolic links (one could point outside it); refused")
    key = key_path(public_key, PUBLIC_KEY_ENV, "public key")
    _check_key(key, private=False)
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(target, signature)
    except Exception as exc:  # noqa: BLE001 - the library raises several types; all mean "does not verify"
        raise SignatureError(_explain(target, exc)) from None


def _explain(directory: Path, exc: Exception) -> str:
    text = str(exc)
    changed = re.findall(r"Hash mismatch for \\?'(.+?)\\?'", text)
    extra = re.search(r"Extra files found in model '[^']*': ([^\]\"]+)", text)
    missing = re.search(r"Missing files in model '[^']*': ([^\]\"]+)", text)
    parts = []
    if changed:
        parts.append(f"changed: {', '.join(changed)}")
    if extra:
        parts.append(f"not signed (added): {extra.group(1).strip(' ,')}")
    if missing:
        parts.append(f"missing: {missing.group(1).strip(' ,')}")
    if parts:
        return f"{directory}: signature check failed; " + "; ".join(parts)
    return f"{directory}: {SIGNATURE_FILE} does not match the public key or is corrupt ({type(exc).__name__}: {text[:200]})"
