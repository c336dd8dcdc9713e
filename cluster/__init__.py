"""Knowing the hardware: device discovery, starting or joining Ray, emulated clusters,
snapshots for the scheduler, capacity reports."""

from cluster.ray_cluster import prepare_loopback

prepare_loopback()  # before anything imports ray

from cluster.config import SuanliConfig, load_config  # noqa: E402
from cluster.errors import ConfigError  # noqa: E402
from cluster.ray_cluster import Connection, connect, disconnect  # noqa: E402
from cluster.snapshot import snapshot  # noqa: E402

__all__ = ["Connection", "ConfigError", "SuanliConfig", "connect", "disconnect", "load_config", "snapshot"]
