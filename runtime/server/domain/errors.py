"""The domain's errors: what went wrong, in the caller's terms, without HTTP.

The API maps each class to one status (runtime/server/app.py); nothing else decides a status.
A message is one line naming the field and the fix, cut to MAX_MESSAGE_CHARS with terminal
escapes, control and format characters removed: whatever text an error is built from (a file
read, a response body), what reaches a caller is one short printable line.
"""

from __future__ import annotations

import re

MAX_MESSAGE_CHARS = 300
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # colour and cursor codes


def one_line(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` as one printable line of at most `limit` characters (terminal escape codes removed,
    control, format and line separator characters become spaces, runs of spaces one space; a cut
    line ends with '...')."""
    raw = _TERMINAL_ESCAPE.sub("", str(text)[: limit * 8])  # bounded work whatever the size of the input
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in raw).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def first_validation_error(err, prefix: str = "") -> str:
    """A pydantic (or FastAPI request) validation error as one line: the first wrong field's path
    and what is wrong with it."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body",))
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return one_line(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")


def for_status(status: int, message: object) -> DomainError:
    """The domain error a lower layer's status means (403, 404, 409, else 422)."""
    return {403: Forbidden, 404: NotFound, 409: Conflict}.get(status, Invalid)(message)


class DomainError(Exception):
    """A request the rules refuse; `message` is the bounded, sanitised line the caller sees."""

    def __init__(self, message: object):
        self.message = one_line(message)
        super().__init__(self.message)


class Invalid(DomainError):
    """A field's value is wrong (the message names the field and the fix)."""


class NotFound(DomainError):
    """The named job, user, token, cluster, registry or deployment does not exist."""


class Conflict(DomainError):
    """The request contradicts the current state (cancel a finished job, revoke the last admin,
    remove a cluster attempts run on)."""


class TooLarge(DomainError):
    """A value over its size limit (the message names the field and the limit)."""


class Forbidden(DomainError):
    """The caller may not do this; `why` is what was refused, for the audit record."""

    def __init__(self, message: object, why: str | None = None):
        super().__init__(message)
        self.why = one_line(why if why is not None else self.message)

    @classmethod
    def refused(cls, identity, what: str) -> Forbidden:
        """The caller's role or scope does not allow `what`."""
        return cls(f"forbidden: {identity.name} ({identity.role}) may not {what}", why=what)
