import pytest

from cluster.config import load_config
from cluster.emulation import parse_emulation
from cluster.errors import ConfigError

GOOD_NODE = {"tier": "center", "site": "dc1", "count": 1, "cpu": 1}


def test_nothing_configured_means_embedded_default(tmp_path):
    config = load_config(environ={"HOME": str(tmp_path)})
    assert config.ray_address is None and config.tier == "center"


def test_environment_overrides_file(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("ray_address: 10.0.0.5:6379\nsite: dc1\n")
    config = load_config(file, environ={"SUANLI_RAY_ADDRESS": "127.0.0.1:6380", "SUANLI_TIER": "edge"})
    assert (config.ray_address, config.site, config.tier) == ("127.0.0.1:6380", "dc1", "edge")


@pytest.mark.parametrize("address", ["127.0.0.1:6379", "ray://head.svc:10001", "auto", "[::1]:6379"])
def test_good_addresses(address):
    assert load_config(environ={"SUANLI_RAY_ADDRESS": address, "HOME": "/nonexistent"}).ray_address == address


@pytest.mark.parametrize("address", ["127.0.0.1", "http://x:1", "host:99999", "a b:1"])
def test_malformed_address_names_the_field(address):
    with pytest.raises(ConfigError) as err:
        load_config(environ={"SUANLI_RAY_ADDRESS": address, "HOME": "/nonexistent"})
    message = str(err.value)
    assert "ray_address" in message and "HOST:PORT" in message and "\n" not in message


def test_unknown_tier_in_config_lists_allowed(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("tier: middle\n")
    with pytest.raises(ConfigError, match=r"tier: .*'center' or 'edge'.*middle"):
        load_config(file, environ={})


def test_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="SUANLI_CONFIG"):
        load_config(environ={"SUANLI_CONFIG": str(tmp_path / "missing.yaml")})


def test_unknown_config_key(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("ray_adress: 1.2.3.4:1\n")
    with pytest.raises(ConfigError, match="ray_adress: unknown field"):
        load_config(file, environ={})


@pytest.mark.parametrize(
    "node, expected",
    [
        ({**GOOD_NODE, "tpu": {"model": "v4", "count": 1}}, r"nodes\[0\]: .*'tpu'.*allowed: .*gpu, npu"),
        ({**GOOD_NODE, "count": -1}, r"nodes\[0\]\.count: .*greater than or equal to 1.*-1"),
        ({**GOOD_NODE, "tier": "regional"}, r"nodes\[0\]\.tier: .*'center' or 'edge'.*regional"),
        ({**GOOD_NODE, "gpu": {"model": "A100", "count": -2}}, r"nodes\[0\]\.gpu\.count: .*-2"),
        ({**GOOD_NODE, "gpu": {"model": "A100"}}, r"nodes\[0\]\.gpu\.count: Field required"),
        ({**GOOD_NODE, "site": "no spaces"}, r"nodes\[0\]\.site: .*letters"),
    ],
)
def test_bad_emulation_is_one_line_naming_the_field(node, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        parse_emulation({"name": "x", "nodes": [node]}, "demo.yaml")
    assert "\n" not in str(err.value) and str(err.value).startswith("demo.yaml: ")


def test_emulation_needs_nodes():
    with pytest.raises(ConfigError, match="nodes"):
        parse_emulation({"name": "x", "nodes": []})


def test_emulation_expands_counts():
    spec = parse_emulation({"name": "x", "nodes": [{**GOOD_NODE, "count": 3}, {**GOOD_NODE, "tier": "edge"}]})
    assert [g.tier for g in spec.expanded()] == ["center"] * 3 + ["edge"]
