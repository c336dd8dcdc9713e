"""`suanli keys init`, `suanli sign`, `suanli verify`: signing keys and signed model directories."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime.cli.common import console, fail

keys_app = typer.Typer(no_args_is_help=True, help="Model-signing keys.")


@keys_app.command("init")
def keys_init(
    directory: Path = typer.Option(Path("~/.suanli/keys"), "--dir", help="Where to write private.pem and public.pem."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Create an ECDSA P-256 key pair for signing model artifacts."""
    from runtime.artifacts.signing import PRIVATE_KEY_ENV, PUBLIC_KEY_ENV, generate_keypair

    try:
        private, public = generate_keypair(directory, overwrite=overwrite)
    except FileExistsError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {private} (keep it secret) and {public}")
    console.print(f"export {PRIVATE_KEY_ENV}={private} {PUBLIC_KEY_ENV}={public}")


def sign(
    directory: Path = typer.Argument(..., help="Model directory to sign (every file in it)."),
    key: Path | None = typer.Option(None, "--key", help="Private key PEM (default: $SUANLI_SIGNING_KEY)."),
) -> None:
    """Sign a model directory; writes model.sig inside it."""
    from runtime.artifacts.signing import sign_directory

    try:
        signature = sign_directory(directory, key)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"signed {directory} -> {signature}")


def verify(
    directory: Path = typer.Argument(...),
    public_key: Path | None = typer.Option(None, "--public-key", help="Public key PEM (default: $SUANLI_PUBLIC_KEY)."),
) -> None:
    """Verify a model directory against its model.sig; exit status 0 only when it verifies."""
    from runtime.artifacts.signing import SignatureError, verify_directory

    try:
        verify_directory(directory, public_key)
    except (SignatureError, ValueError) as exc:
        raise fail(str(exc), code=1) from None
    console.print(f"verified {directory}")
