"""Turning validation failures into one line that names the field and the fix."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration or emulation file that does not validate; the message is one line."""


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after", "literal"):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def one_line(err: ValidationError, source: str) -> ConfigError:
    """A ConfigError whose message is `source: field: what is wrong (got X)` for the first error."""
    first = err.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    got = first.get("input")
    got_text = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    more = f" [+{len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    return ConfigError(f"{source}: {_location(first['loc'])}: {msg}{got_text}{more}")
