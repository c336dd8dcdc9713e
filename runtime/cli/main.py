"""The `suanli` console script."""

from __future__ import annotations

import typer

from runtime.cli.audit import audit_app
from runtime.cli.bench import bench
from runtime.cli.capacity import capacity
from runtime.cli.clusters import clusters_app
from runtime.cli.demo import demo
from runtime.cli.jobs import cancel, events, features, jobs, logs, submit
from runtime.cli.keys import compress, keys_app, sign, verify
from runtime.cli.serve import serve_app
from runtime.cli.server import server, server_stop
from runtime.cli.simulate import simulate_command
from runtime.cli.ui import ui
from runtime.cli.users import quota_app, token_app, users_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="suanli: heterogeneous compute for financial ML.")
app.command()(capacity)
app.command()(bench)
app.command()(server)
app.command("server-stop")(server_stop)
for command in (submit, features, jobs, logs, events, cancel, sign, verify, compress):
    app.command()(command)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(quota_app, name="quota")
app.add_typer(serve_app, name="serve")
app.add_typer(clusters_app, name="clusters")
app.command()(demo)
app.command("simulate")(simulate_command)
app.command()(ui)

# Every command follows one rule: `--json` prints JSON on standard output, `--out FILE` writes a
# file. Old spellings that took a file after `--json` keep working, with a note.
LEGACY_JSON_FILE = {"bench"}


def normalize_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv with old spellings rewritten, deprecation notes to print)."""
    if not argv or argv[0] not in LEGACY_JSON_FILE or "--json" not in argv:
        return argv, []
    i = argv.index("--json")
    if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
        fixed = argv[:i] + ["--out"] + argv[i + 1:]
        return fixed, [f"note: 'suanli {argv[0]} --json FILE' is deprecated; use '--out FILE' ('--json' now "
                       "prints the JSON on standard output)"]
    return argv, []


def main() -> None:
    """The console script: old spellings rewritten (with a note on standard error), then the app."""
    import sys

    argv, notes = normalize_argv(sys.argv[1:])
    for note in notes:
        print(note, file=sys.stderr)
    app(args=argv, prog_name="suanli")


if __name__ == "__main__":
    main()
