"""The federation's parts without Ray: health from probe results, entry and token validation,
one merged view, and probes of hostile addresses (real sockets on loopback: a server that
trickles its answer a byte a second, one that answers an error page holding a secret, one that
does not speak HTTP) giving bounded, sanitised reasons within the deadline."""

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from cluster.federation import (
    ClusterEntry,
    Federation,
    ProbeHealth,
    check_entry,
    check_token,
    ending_with_exception,
    failure_reason,
    one_line,
    probe_nodes,
)
from schedulers.engine import check_submission
from schedulers.types import ClusterState, Device, JobRequest, Node

SECRET = "s3cr3t-admin-token-0123456789"


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


def test_entries_are_validated_naming_the_field():
    with pytest.raises(ValueError, match="^address: "):
        check_entry("bj", "bj-dc1:8265", None, "center", None)
    with pytest.raises(ValueError, match="^tier: 'core'"):
        check_entry("bj", "http://10.0.0.5:8265", None, "core", None)
    with pytest.raises(ValueError, match=r"^links\.sh\.bandwidth_bps"):
        check_entry("bj", "http://10.0.0.5:8265", None, "center", None, {"sh": {"bandwidth_bps": 0}})
    entry = check_entry("bj", "http://10.0.0.5:8265/", "beijing", "edge", "/mnt/runs",
                        {"sh": {"bandwidth_bps": 1e8, "latency_ms": 20}})
    assert entry.address == "http://10.0.0.5:8265" and entry.token_secret is None
    assert entry.site == "beijing" and entry.links["sh"].bandwidth_bps == 1e8


def test_a_token_is_one_line_of_visible_ascii_and_errors_never_repeat_it():
    assert check_token(SECRET + "\n") == SECRET and check_token(SECRET + "\r\n\n") == SECRET
    cases = {"": "token: is empty", " \n": "token: is empty", f"{SECRET}\n{SECRET}\n": "token: is not a single line (2 lines)",
             f"line one\n{SECRET}": "token: is not a single line (2 lines)",
             f"{SECRET} x": "token: has a space, control or non-ASCII character at position 30",
             f"{SECRET}\x00": "token: has a space, control or non-ASCII character at position 30",
             "x" * 5000: "token: is 5000 characters long, more than 4096"}
    for value, said in cases.items():
        with pytest.raises(ValueError) as refused:
            check_token(value)
        assert str(refused.value).startswith(said), str(refused.value)
        assert SECRET not in str(refused.value) and "ray get-auth-token" in str(refused.value)


def test_reasons_are_one_bounded_line_and_a_failure_keeps_its_exception_line():
    assert one_line("a\nb\r\n\tc\x1b[31m\u2028d") == "a b c [31m d"
    assert len(one_line("x" * 1000)) == 200 and one_line("x" * 1000).endswith("…")
    ray_message = ("Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
                   "Traceback (most recent call last):\n" + "  File \"/x.py\", line 3, in <module>\n" * 40 +
                   "FileNotFoundError: [Errno 2] No such file or directory: '/nowhere/runs/j/launch.json'\n\n")
    said = ending_with_exception(ray_message)
    assert said.startswith("Job entrypoint command failed with exit code 1")
    assert said.endswith("FileNotFoundError: [Errno 2] No such file or directory: '/nowhere/runs/j/launch.json'")
    assert len(said) <= 300 and "\n" not in said
    assert ending_with_exception("E: " + "y" * 400).endswith("…") and len(ending_with_exception("y" * 400)) == 300
    assert failure_reason(ValueError(f"bad\n{SECRET}" + "z" * 300)).startswith("ValueError: bad s3cr3t")
    assert len(failure_reason(ValueError("z" * 300))) == 200


def node(cluster, site, cpus=4):
    return Node(id=f"{cluster}-n", cluster=cluster, tier="center", site=site,
                devices=(Device(kind="cpu", model="cpu", count=cpus),))


def test_one_view_of_healthy_clusters_with_links_and_held_devices():
    answers = {"bj": True, "sh": True}
    tokens_seen = {}

    async def probe(entry, timeout, token):
        tokens_seen[entry.name] = token
        if not answers[entry.name]:
            raise ConnectionRefusedError("refused")
        return [node(entry.name, entry.site)]

    entries = [check_entry("bj", "http://127.0.0.1:1", "bj", "center", None, {"sh": {"bandwidth_bps": 5e7}}),
               check_entry("sh", "http://127.0.0.1:2", "sh", "center", None)]
    changes = []
    federation = Federation(lambda: entries, lost_after=2, on_change=lambda *c: changes.append(c[:2]), probe=probe,
                            token_for={"bj": "bj-token"}.get)
    federation.probe_all()
    assert tokens_seen == {"bj": "bj-token", "sh": None}
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
    assert next(s for s in federation.status() if s["name"] == "bj")["last_error"] == "ConnectionRefusedError: refused"
    state = federation.merged_state(local, {})
    assert {n.cluster for n in state.nodes} == {"local", "sh"}
    # a job restricted to the lost cluster finds nothing now (the controller makes it wait)
    pinned = JobRequest(id="j", allowed_kinds=("cpu",), clusters=("bj",))
    assert check_submission(pinned, state) is not None
    assert check_submission(JobRequest(id="j", allowed_kinds=("cpu",), sites=("sh",)), state) is None


def test_a_token_that_cannot_be_read_is_that_clusters_missed_probe_only():
    async def probe(entry, timeout, token):
        return [node(entry.name, entry.site)]

    def token_for(name):
        if name == "bad":
            raise RuntimeError("secret cluster/bad/ray-token: cannot be opened (Too many levels of symbolic links)")
        return None

    entries = [check_entry("bad", "http://127.0.0.1:1", None, "center", None),
               check_entry("good", "http://127.0.0.1:2", None, "center", None)]
    federation = Federation(lambda: entries, probe=probe, token_for=token_for)
    federation.probe_all()
    status = {s["name"]: s for s in federation.status()}
    assert status["good"]["health"] == "healthy" and status["bad"]["health"] == "unknown"
    assert status["bad"]["last_error"].startswith("RuntimeError: secret cluster/bad/ray-token: cannot be opened")


def test_probes_run_at_least_every_two_seconds():
    with pytest.raises(ValueError, match="interval_s"):
        Federation(lambda: [], interval_s=15)


# ---- hostile addresses, on real loopback sockets -------------------------------------------
@contextlib.contextmanager
def raw_server(answer):
    """A TCP server on loopback calling `answer(connection)` for each connection; its address."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_answer_and_close, args=(answer, conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def _answer_and_close(answer, conn, stop):
    with conn:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            conn.recv(65536)
            answer(conn, stop)


def trickle(conn, stop):
    """One byte of an HTTP answer a second, for ever: every read succeeds, none ends it."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 100:
        if stop.is_set():
            return
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


def error_page(conn, stop):
    body = f"<html>internal error\nAuthorization: Bearer {SECRET}\n</html>".encode()
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def not_ray(conn, stop):
    body = f'{{"data": "{SECRET}\\nline two"}}'.encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))


def not_http(conn, stop):
    conn.sendall(f"SSH-2.0-OpenSSH {SECRET}\r\n".encode() * 3)


def entry_at(name, address):
    return ClusterEntry(name=name, address=address, site=name)


def test_hostile_answers_give_a_bounded_reason_without_their_content():
    reasons = {}
    for answer in (error_page, not_ray, not_http):
        with raw_server(answer) as address:
            federation = Federation(lambda a=address: [entry_at("x", a)], timeout_s=2.0, token_for=lambda n: SECRET)
            federation.probe_all()
            reasons[answer.__name__] = federation.status()[0]["last_error"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    federation = Federation(lambda: [entry_at("x", f"http://127.0.0.1:{port}")])
    federation.probe_all()
    reasons["closed"] = federation.status()[0]["last_error"]
    print(reasons)
    assert reasons["error_page"] == "HTTP 500"
    assert reasons["not_ray"].startswith("the answer is not Ray's node list")
    assert "protocol error" in reasons["not_http"]
    assert reasons["closed"] == "connection refused"
    for reason in reasons.values():
        assert SECRET not in reason and "\n" not in reason and len(reason) <= 200


def test_a_trickling_address_misses_its_probes_by_the_deadline_and_never_holds_up_another():
    healthy = entry_at("good", "http://127.0.0.1:1")

    async def probe(entry, timeout, token):
        if entry.name == "good":
            return [node("good", "good")]
        return await probe_nodes(entry, timeout, token)

    with raw_server(trickle) as address:
        changes = []
        federation = Federation(lambda: [entry_at("slow", address), healthy], interval_s=0.5, timeout_s=0.5,
                                lost_after=3, probe=probe, on_change=lambda *c: changes.append(c[:2]))
        federation.start()
        try:
            deadline = time.time() + 30
            while federation.health("slow") != "lost" and time.time() < deadline:
                assert federation.health("good") in ("unknown", "healthy")
                time.sleep(0.1)
            rounds = {s["name"]: s for s in federation.status()}
        finally:
            federation.stop()
    # every read of the trickler succeeds (a byte a second), yet the probe ends at its deadline
    assert rounds["slow"]["health"] == "lost" and rounds["slow"]["last_error"] == "timed out after 0.5 s"
    assert rounds["good"]["health"] == "healthy" and rounds["good"]["probes"] >= rounds["slow"]["probes"] >= 3
    assert ("good", "lost") not in changes and ("slow", "lost") in changes


def test_probe_nodes_reads_ray_node_list():
    import json

    listed = {"data": {"result": {"result": [
        {"node_id": "a" * 56, "state": "ALIVE", "labels": {}, "resources_total": {"CPU": 4.0, "memory": 8e9}},
        {"node_id": "b" * 56, "state": "DEAD", "labels": {}, "resources_total": {"CPU": 4.0}}]}}}

    def ray_like(conn, stop):
        body = json.dumps(listed).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))

    with raw_server(ray_like) as address:
        nodes = asyncio.run(probe_nodes(entry_at("bj", address), 2.0, "t"))
    assert [n.cluster for n in nodes] == ["bj"] and nodes[0].site == "bj"
