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


def compress(
    artifact: Path = typer.Argument(..., help="Signed artifact directory."),
    out: Path = typer.Option(..., "--out", help="Directory for the candidate artifacts."),
    methods: str = typer.Option("", "--methods", help="Comma-separated: distillation, quantize_dynamic, "
                                "quantize_static, pruning, tree_truncation (default: those that fit the model)."),
    kind: str = typer.Option("cpu", "--kind", help="Device kind the model will be served on (cpu, gpu, npu): "
                             "candidates are timed with its ONNX Runtime providers."),
    key: Path | None = typer.Option(None, "--key", help="Private key (default: $SUANLI_SIGNING_KEY)."),
    public_key: Path | None = typer.Option(None, "--public-key", help="Public key (default: $SUANLI_PUBLIC_KEY)."),
) -> None:
    """Compress a signed artifact; every candidate is a new signed artifact; print the comparison."""
    from rich.table import Table

    from runtime.artifacts.signing import SignatureError
    from runtime.compression.pipeline import compress as run

    try:
        report = run(artifact, out, [m.strip() for m in methods.split(",") if m.strip()] or None, key, public_key,
                     kind=kind)
    except (SignatureError, ValueError) as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"compression of {artifact.name} (chosen: {report['chosen']})")
    for col in ("candidate", "AUC", "size KiB", "p50 ms (1 row)", "rows/s (1 row)", "rows/s (256)"):
        table.add_column(col, justify="left" if col == "candidate" else "right")
    rows = [("source", report["before"])] + [(n, r["after"]) for n, r in report["candidates"].items()]
    for name, m in rows:
        table.add_row(name, f"{m['auc']:.4f}", f"{m['size_bytes'] / 1024:.1f}", f"{m['batch1_p50_ms']:.3f}",
                      f"{m['batch1_rows_per_s']:,.0f}", f"{m['batch256_rows_per_s']:,.0f}")
    console.print(table)
    for method, why in report["skipped"].items():
        console.print(f"skipped {method}: {why}")
    console.print(f"chosen artifact: {report['chosen_path']}")
