"""The federation's pure parts: health from probe results, entry validation, one merged view."""

import pytest

from cluster.federation import Federation, ProbeHealth, check_entry
from schedulers.engine import check_submission
from schedulers.types import ClusterState, Device, JobRequest, Node


def test_lost_after_consecutive_misses_and_healthy_after_steady_answers():
    health = ProbeHealth(lost_after=3, healthy_after=2)
    assert health.answered(0.0) == "healthy"
    assert health.missed_probe(2.0, "timeout") == "healthy"
    assert health.missed_probe(4.0, "timeout") == "healthy"  # a blip: two misses change nothing
    assert health.answered(6.0) == "healthy" and health.missed == 0
    for t in (8.0, 10.0):
        health.missed_probe(t, "refused")
    assert health.missed_probe(12.0, "refused") == "lost" and health.lost_since == 8.0
    assert health.answered(14.0) == "lost"  # one answer is not steady
    assert health.missed_probe(16.0, "refused") == "lost"
    assert health.answered(18.0) == "lost" and health.answered(20.0) == "healthy" and health.lost_since is None


def test_entries_are_validated_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="^address: "):
        check_entry("bj", "bj-dc1:8265", None, "center", None, None)
    with pytest.raises(ValueError, match="^tier: 'core'"):
        check_entry("bj", "http://10.0.0.5:8265", None, "core", None, None)
    with pytest.raises(ValueError, match=r"^links\.sh\.bandwidth_bps"):
        check_entry("bj", "http://10.0.0.5:8265", None, "center", None, None, {"sh": {"bandwidth_bps": 0}})
    token = tmp_path / "t"
    token.write_text("secret\n")
    entry = check_entry("bj", "http://10.0.0.5:8265/", "beijing", "edge", "/mnt/runs", str(token),
                        {"sh": {"bandwidth_bps": 1e8, "latency_ms": 20}})
    assert entry.address == "http://10.0.0.5:8265" and entry.headers() == {"Authorization": "Bearer secret"}
    assert entry.site == "beijing" and entry.links["sh"].bandwidth_bps == 1e8


def node(cluster, site, cpus=4):
    return Node(id=f"{cluster}-n", cluster=cluster, tier="center", site=site,
                devices=(Device(kind="cpu", model="cpu", count=cpus),))


def test_one_view_of_healthy_clusters_with_links_and_held_devices():
    answers = {"bj": True, "sh": True}

    def probe(entry, timeout):
        if not answers[entry.name]:
            raise ConnectionRefusedError("refused")
        return [node(entry.name, entry.site)]

    entries = [check_entry("bj", "http://127.0.0.1:1", "bj", "center", None, None, {"sh": {"bandwidth_bps": 5e7}}),
               check_entry("sh", "http://127.0.0.1:2", "sh", "center", None, None)]
    changes = []
    federation = Federation(lambda: entries, lost_after=2, on_change=lambda *c: changes.append(c[:2]), probe=probe)
    federation.probe_all()
    local = ClusterState(nodes=(node("local", "hq"),))
    state = federation.merged_state(local, {"bj-n": {"cpu": 3}})
    assert {n.cluster for n in state.nodes} == {"local", "bj", "sh"}
    assert next(n for n in state.nodes if n.cluster == "bj").devices[0].free == 1
    assert state.bandwidth("bj", "sh") == 5e7 and state.bandwidth("sh", "bj") == 5e7
    answers["bj"] = False
    federation.probe_all()
    assert federation.health("bj") == "healthy"
    federation.probe_all()
    assert federation.health("bj") == "lost" and ("bj", "lost") in changes
    state = federation.merged_state(local, {})
    assert {n.cluster for n in state.nodes} == {"local", "sh"}
    # a job restricted to the lost cluster finds nothing now (the controller makes it wait)
    pinned = JobRequest(id="j", allowed_kinds=("cpu",), clusters=("bj",))
    assert check_submission(pinned, state) is not None
    assert check_submission(JobRequest(id="j", allowed_kinds=("cpu",), sites=("sh",)), state) is None


def test_probes_run_at_least_every_two_seconds():
    with pytest.raises(ValueError, match="interval_s"):
        Federation(lambda: [], interval_s=15)
