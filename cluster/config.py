"""suanli's configuration: where Ray is, what this node is, where state lives.

Read from a YAML file (``SUANLI_CONFIG``, else ``~/.config/suanli/config.yaml`` when it exists)
and overridden by environment variables ``SUANLI_RAY_ADDRESS``, ``SUANLI_CLUSTER``,
``SUANLI_TIER``, ``SUANLI_SITE`` and ``SUANLI_STATE_DIR``. With nothing set, suanli starts an
embedded single-node Ray on loopback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cluster.errors import ConfigError, one_line

DEFAULT_CONFIG_PATH = Path("~/.config/suanli/config.yaml")
_HOST_PORT = re.compile(r"^(ray://)?([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")

ENV_FIELDS = {
    "SUANLI_RAY_ADDRESS": "ray_address",
    "SUANLI_CLUSTER": "cluster_name",
    "SUANLI_TIER": "tier",
    "SUANLI_SITE": "site",
    "SUANLI_STATE_DIR": "state_dir",
    "SUANLI_SERVER": "server",
    "SUANLI_TOKEN": "token",
}


def check_label_value(field: str, value: str) -> str:
    """Ray and Kubernetes label values: 1-63 of letters, digits, '-', '_', '.'; else ValueError."""
    if not _NAME.match(value):
        raise ValueError(f"{field}: {value!r} must be 1-63 letters, digits, '-', '_' or '.'")
    return value


class SuanliConfig(BaseModel):
    """Validated settings. `ray_address` None means: the server starts (or joins) the local Ray
    head of its state directory. `server` is the URL of the suanli server clients talk to; None
    means the local server of `state_dir`, started on first use."""

    model_config = ConfigDict(extra="forbid")

    ray_address: str | None = None
    cluster_name: str = "local"
    tier: Literal["center", "edge"] = "center"
    site: str = "local"
    state_dir: Path = Path("~/.suanli")
    server: str | None = None
    token: str | None = None

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(:\d+)?/?$", value):
            raise ValueError("must be http(s)://HOST:PORT, e.g. http://127.0.0.1:46580")
        return value.rstrip("/") if value else value

    @field_validator("ray_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto":
            return value
        m = _HOST_PORT.match(value)
        if not m or not 0 < int(m.group(3)) < 65536:
            raise ValueError("must be HOST:PORT, ray://HOST:PORT or 'auto'")
        return value

    @field_validator("cluster_name", "site")
    @classmethod
    def _label(cls, value: str) -> str:
        check_label_value("value", value)
        return value

    @property
    def state_path(self) -> Path:
        """The state directory with `~` expanded."""
        return self.state_dir.expanduser()


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> SuanliConfig:
    """Read the config file (when one exists) and apply environment overrides.

    Raises ConfigError with one line naming the field when a value is wrong, or when an
    explicitly named file is missing.
    """
    env = os.environ if environ is None else environ
    data: dict = {}
    source = "environment"
    explicit = path or env.get("SUANLI_CONFIG")
    file = Path(explicit).expanduser() if explicit else DEFAULT_CONFIG_PATH.expanduser()
    if file.exists():
        source = str(file)
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: must be a mapping of settings, e.g. 'site: dc1'")
        data.update(loaded)
    elif explicit:
        raise ConfigError(f"SUANLI_CONFIG: {file} does not exist; create it or unset the variable")
    for var, key in ENV_FIELDS.items():
        if env.get(var):
            data[key] = env[var]
    try:
        return SuanliConfig(**data)
    except ValidationError as err:
        raise one_line(err, source) from None
