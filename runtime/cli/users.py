"""`suanli users add | list | revoke` and `suanli token create | revoke`: accounts through the
server's API (admins manage users; anyone may create and revoke their own tokens)."""

from __future__ import annotations

import re

import typer
from rich.table import Table

from runtime.cli.common import console, fail, print_json
from runtime.cli.jobs import call

users_app = typer.Typer(no_args_is_help=True, help="Users and their roles (admins).")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str) -> float:
    """'30m', '8h', '7d' -> seconds; a clear error naming --expires otherwise."""
    found = _DURATION.match(text.strip())
    if not found:
        raise fail(f"--expires: {text!r} is not a duration such as 30m, 8h or 7d")
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]


@users_app.command("add")
def add(name: str = typer.Argument(...), role: str = typer.Option(..., "--role"),
        tenant: str = typer.Option("default", "--tenant"), expires: str = typer.Option("24h", "--expires")) -> None:
    """Add a user and print their first token (shown once)."""
    out = call("POST", "/users", {"name": name, "role": role, "tenant": tenant, "expires_s": parse_duration(expires)})
    console.print(f"user {name} ({role}, tenant {tenant}); token (shown once, expires in {expires}):")
    typer.echo(out["token"])


@users_app.command("list")
def list_users(json_out: bool = typer.Option(False, "--json")) -> None:
    """List users with their role, tenant and whether they are revoked."""
    found = call("GET", "/users")
    if json_out:
        print_json(found)
        return
    table = Table(title="users")
    for col in ("name", "role", "tenant", "created by", "revoked"):
        table.add_column(col)
    for u in found:
        table.add_row(u["name"], u["role"], u["tenant"], u["created_by"], "yes" if u["revoked"] else "")
    console.print(table)


@users_app.command("revoke")
def revoke(name: str = typer.Argument(...)) -> None:
    """Disable a user and revoke all their tokens."""
    out = call("POST", f"/users/{name}/revoke", {})
    console.print(f"revoked user {name} and {out['tokens_revoked']} token(s)")


@token_app.command("create")
def create(user: str | None = typer.Option(None, "--user", help="Another user's token (admins)."),
           expires: str = typer.Option("24h", "--expires"), label: str = typer.Option("", "--label")) -> None:
    """Create a token (yours unless --user) and print it once."""
    out = call("POST", "/tokens", {"user": user, "expires_s": parse_duration(expires), "label": label})
    console.print(f"token {out['id']} for {out['user']} (shown once, expires in {expires}):")
    typer.echo(out["token"])


@token_app.command("revoke")
def revoke_token(token_id: str = typer.Argument(...)) -> None:
    """Revoke a token by its id (yours, or any for admins)."""
    call("POST", f"/tokens/{token_id}/revoke", {})
    console.print(f"revoked token {token_id}")


quota_app = typer.Typer(no_args_is_help=True, help="Caps per tenant or user: devices per kind, concurrent jobs.")


@quota_app.command("set")
def set_quota(tenant: str | None = typer.Option(None, "--tenant"), user: str | None = typer.Option(None, "--user"),
              cpu: float | None = typer.Option(None, "--cpu"), gpu: float | None = typer.Option(None, "--gpu"),
              npu: float | None = typer.Option(None, "--npu"), jobs: int | None = typer.Option(None, "--jobs")) -> None:
    """Cap a tenant or a user (admins); with no cap given, remove theirs."""
    if (tenant is None) == (user is None):
        raise fail("give exactly one of --tenant and --user")
    scope, name = ("tenant", tenant) if tenant else ("user", user)
    body = {k: v for k, v in {"cpu": cpu, "gpu": gpu, "npu": npu, "jobs": jobs}.items() if v is not None}
    out = call("PUT", f"/quotas/{scope}/{name}", body)
    console.print(f"{out['key']}: {out['limits'] or 'no caps'}")


@quota_app.command("list")
def list_quotas(json_out: bool = typer.Option(False, "--json")) -> None:
    """Every cap and what is in use against it."""
    found = call("GET", "/quotas")
    if json_out:
        print_json(found)
        return
    console.print(quota_table(found))


def quota_table(found: list[dict]) -> Table:
    table = Table(title="quotas")
    for col in ("tenant or user", "cap", "in use", "limit"):
        table.add_column(col)
    for q in found:
        for kind, limit in q["limits"].items():
            table.add_row(q["key"], kind, f"{q['used'].get(kind, 0):g}", f"{limit:g}")
    return table
