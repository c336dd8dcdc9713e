"""The server's secrets: values it keeps for itself (a registered cluster's Ray auth token, say),
referred to by name (`cluster/bj-dc1/ray-token`), never by a path a caller picks.

One file per secret in a directory of the server's state directory (0700), each file 0600,
written atomically (a temporary file in the same directory, fsynced, then renamed over the old
one), so several servers sharing the state directory see either the old or the new value. Files
are opened without following symlinks and read up to MAX_SECRET_BYTES. No message of this module
contains a secret's value.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62}){0,3}$")
MAX_SECRET_BYTES = 16 * 1024


class SecretError(RuntimeError):
    """A secret that cannot be stored or read; the message names the secret, never its value."""


class SecretStore:
    """Put, get and delete secrets by name in `directory` (created 0700)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)

    def _path(self, name: str) -> Path:
        if not NAME_PATTERN.match(name or ""):
            raise ValueError(f"secret name {name!r}: must be 1-4 '/'-separated parts of lowercase letters, digits, "
                             "'.', '_' or '-', each starting with a letter or digit (e.g. cluster/bj-dc1/ray-token)")
        return self.directory / quote(name, safe="")

    def put(self, name: str, value: str) -> None:
        """Store `value` under `name` (replacing any older value), 0600, atomically."""
        data = value.encode()
        if not data or len(data) > MAX_SECRET_BYTES:
            raise SecretError(f"secret {name}: a value of 1 to {MAX_SECRET_BYTES} bytes is required")
        target = self._path(name)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._sync_directory()

    def get(self, name: str) -> str | None:
        """The value stored under `name`, or None when there is none; SecretError when the file is
        not a regular file of this store (a symlink, say) or cannot be read."""
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretError(f"secret {name}: cannot be opened ({exc.strerror}); store it again") from None
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(source.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SECRET_BYTES:
                raise SecretError(f"secret {name}: its file is not a regular file of at most {MAX_SECRET_BYTES} "
                                  "bytes; store it again")
            data = source.read(MAX_SECRET_BYTES + 1)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise SecretError(f"secret {name}: its file is not UTF-8 text; store it again") from None

    def exists(self, name: str) -> bool:
        """Whether a secret is stored under `name` (without reading it)."""
        return os.path.lexists(self._path(name))

    def delete(self, name: str) -> bool:
        """Remove the secret (False when there was none)."""
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            return False
        self._sync_directory()
        return True

    def names(self) -> list[str]:
        """The names of every stored secret."""
        return sorted(unquote(p.name) for p in self.directory.iterdir() if not p.name.startswith(".tmp-"))

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

