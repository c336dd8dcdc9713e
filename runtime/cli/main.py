"""The `suanli` console script."""

from __future__ import annotations

import typer

from runtime.cli.audit import audit_app
from runtime.cli.bench import bench
from runtime.cli.capacity import capacity
from runtime.cli.demo import demo
from runtime.cli.jobs import cancel, events, jobs, logs, submit
from runtime.cli.keys import compress, keys_app, sign, verify
from runtime.cli.server import server, server_stop
from runtime.cli.simulate import simulate_command
from runtime.cli.users import quota_app, token_app, users_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="suanli: heterogeneous compute for financial ML.")
app.command()(capacity)
app.command()(bench)
app.command()(server)
app.command("server-stop")(server_stop)
for command in (submit, jobs, logs, events, cancel, sign, verify, compress):
    app.command()(command)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(quota_app, name="quota")
app.command()(demo)
app.command("simulate")(simulate_command)

if __name__ == "__main__":
    app()
