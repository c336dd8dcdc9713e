"""`suanli ui`: the ops page's address, signed in (the token rides in the URL's fragment, which a
browser keeps to itself: it reaches neither the server's logs nor a proxy's)."""

from __future__ import annotations

import webbrowser
from urllib.parse import quote

import typer

from runtime.cli.common import console, fail
from runtime.cli.jobs import api_errors, client_or_fail


def ui(
    open_browser: bool = typer.Option(False, "--open", help="Open it in this machine's browser too."),
    sign_in: bool = typer.Option(True, "--sign-in/--no-sign-in", help="Put your token in the link (default), or "
                                 "print the bare address to share (the page then asks for a token)."),
) -> None:
    """Print the ops page's address: live capacity per cluster, tier and device kind, cluster health,
    the queue with each job's reason and estimated start, and quota use, refreshed every 2 s."""
    with client_or_fail() as client:
        try:
            client.request("GET", "/ui/state")  # the caller may read it: fail here, not in the browser
        except api_errors() as exc:
            raise fail(str(exc)) from None
        url = f"{client.url}/ui"
        link = f"{url}#token={quote(client.token, safe='')}" if sign_in and client.token else url
    console.print(link, soft_wrap=True, highlight=False)
    if open_browser and not webbrowser.open(link):
        raise fail(f"no browser could be opened here; open {url} yourself")
