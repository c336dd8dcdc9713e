"""Turning validation failures into one line that names the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pydantic only for the annotation: this module imports on a node without it
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


def read_yaml_mapping(path: str | Path, argument: str, what: str) -> dict[str, Any]:
    """The YAML mapping in `path`; ConfigError naming `argument` when the file is missing, and the
    file when it is not YAML or not a mapping (`what` says what it should hold)."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{argument}: {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: must be a mapping of {what}")
    return data
