"""Ray token authentication for the Ray heads suanli starts itself.

Ray 2.60 turns token auth on for a new local cluster whenever a token can be found (and writes
`~/.ray/auth_token` on the first plain `ray.init()` on a machine). A head suanli starts therefore
never relies on whatever the user's `~/.ray`, `RAY_AUTH_MODE` or `RAY_AUTH_TOKEN` say: it runs with
token auth and a token of its own, kept in its state directory (mode 0600), and the processes that
connect to it (the server, Ray's workers, which inherit the environment) use that token.

A cluster suanli joins (`ray_address`) is not touched: its token comes from the environment as
Ray documents (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

TOKEN_FILE = "ray-auth-token"
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def ensure_token(state_dir: Path) -> Path:
    """The path of the state directory's Ray token, created (256 random bits, mode 0600, never
    through a symlink) when absent. ValueError naming the file when it is not a private regular
    file holding one line."""
    path = state_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        _check_token_file(path)
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path


def _check_token_file(path: Path) -> None:
    info = os.lstat(path)
    if not os.path.isfile(path) or os.path.islink(path):
        raise ValueError(f"{path}: the Ray token must be a regular file, not a link; remove it and restart")
    if info.st_mode & 0o077:
        raise ValueError(f"{path}: the Ray token is readable by others (mode {info.st_mode & 0o777:o}); "
                         f"chmod 600 it or remove it and restart")
    if len(path.read_text().strip().splitlines()) != 1:
        raise ValueError(f"{path}: the Ray token must be one line; remove it and restart")


def token_environment(token_path: Path) -> dict[str, str]:
    """The environment a process needs to start or join a head that uses the token at `token_path`
    (`RAY_AUTH_TOKEN` must be absent from it: Ray prefers it to the path)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def child_environment(token_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the user's Ray auth variables replaced by
    the ones for the token at `token_path`."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in AUTH_VARIABLES}
    return {**env, **token_environment(token_path)}


def use_token(token_path: Path) -> None:
    """Make this process (and the processes it starts) use Ray token auth with the token at
    `token_path`, even when Ray was imported, or a token loaded, before."""
    for name in AUTH_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(token_environment(token_path))
    if "ray._raylet" in sys.modules:  # Ray caches its config and the token it found at import
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
