"""What every command shares: the console, one-line errors, and a cluster session."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from cluster.errors import ConfigError

console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` on stderr as one line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(data) -> None:
    """Print `data` as indented JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def emulated_session(emulate: Path) -> Iterator[None]:
    """An emulated cluster started from the YAML file `emulate`, this process connected to it as
    its driver, stopped afterwards (for `suanli capacity --emulate`: inspection without a server)."""
    from cluster.emulation import EmulatedCluster, load_emulation

    try:
        spec = load_emulation(emulate)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    with console.status(f"starting emulated cluster {spec.name!r} ({len(spec.expanded())} nodes)..."):
        emulated = EmulatedCluster(spec)
    try:
        yield
    finally:
        emulated.shutdown()
