"""Serving on Ray Serve, as a user meets it: a registry version deployed through the server on the
emulated demo cluster (one edge node at branch-sh, three centre nodes), scored over HTTP and from
Python; bad rows, withdrawn versions and bad settings refused naming the field; overload answered
503 with Retry-After; the edge node killed under load with every request answered (by the centre
while the edge is gone), and traffic back at the edge when a node returns."""

import json
import threading
import time

import httpx
import numpy as np
import pytest
import ray

from runtime.artifacts.load import load_artifact
from runtime.artifacts.registry import Registry
from runtime.serving.client import Overloaded, ScoringClient, ScoringError
from runtime.serving.decisions import check_thresholds, decide
from tests.conftest import REPO
from tests.runtime.test_artifacts import keys, make_artifact, trained  # noqa: F401 - fixtures
from tests.runtime.test_control_plane import Servers, free_port, wait_for

pytestmark = pytest.mark.ray
THRESHOLDS = {"block": 0.9, "hold": 0.7, "warn": 0.5}


@pytest.fixture(scope="module")
def served(demo_cluster, tmp_path_factory, trained, keys):  # noqa: F811
    from runtime import Client

    root = tmp_path_factory.mktemp("serving")
    registry = Registry(root / "registry", public_key=keys[1])
    registry.register(make_artifact(root, trained, keys, "v1"), "fraud", actor="alice")
    registry.register(make_artifact(root, trained, keys, "v2"), "fraud", actor="alice")
    registry.withdraw("fraud", 2, actor="dave", reason="drift")
    group = Servers(demo_cluster.address, root / "state", [root, REPO.parent / "shared"])
    port = free_port()
    from runtime.server.local import start_server

    proc, url = start_server(group.state_dir, "--ray-address", demo_cluster.address, "--serve-port", str(port),
                             "--signing-public-key", str(keys[1]), port=free_port(), log_name="server.log")
    group.procs[url] = proc
    wait_for(group.active, 30, "an active server")
    with Client(address=url, state_dir=group.state_dir) as client:
        yield client, registry, root
    group.stop_all()


def rows_of(trained, n):  # noqa: F811
    _, test, _ = trained
    return test.drop(columns=["class"]).head(n).to_dict("records")


def test_decisions_and_thresholds():
    assert [decide(p, THRESHOLDS) for p in (0.95, 0.8, 0.6, 0.1)] == ["block", "hold", "warn", "pass"]
    assert decide(float("nan"), THRESHOLDS) == "hold" and decide(float("inf"), THRESHOLDS) == "hold"
    with pytest.raises(ValueError, match="thresholds: need 1 >= block >= hold >= warn"):
        check_thresholds({"block": 0.5, "hold": 0.7, "warn": 0.1})


def listening_process(port: int) -> str:
    """The name of the process listening on TCP `port` on this host."""
    import psutil

    pid = next(c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port)
    return psutil.Process(pid).name()


def test_deploy_scores_at_the_edge_over_http_and_python(served, trained, keys):  # noqa: F811
    client, registry, root = served
    endpoint = client.deploy(registry.root, "fraud", version=1, sites=["branch-sh"],
                             thresholds=THRESHOLDS)
    assert endpoint.model == "fraud:v1" and endpoint.url.endswith("/models/fraud/v1")
    # HTTP reaches the replicas through HAProxy (cluster/serve_ingress.py), not Serve's Python proxy
    assert listening_process(httpx.URL(endpoint.url).port) == "haproxy"
    rows = rows_of(trained, 20)
    expected = load_artifact(registry.version("fraud", 1).path, keys[1]).predict(rows)
    at_edge = endpoint.score(rows, site="branch-sh", request_id="tx-0001")
    assert at_edge.request_id == "tx-0001" and at_edge.model == "fraud:v1" and at_edge.via == "edge"
    assert at_edge.served_by["tier"] == "edge" and at_edge.served_by["site"] == "branch-sh"
    np.testing.assert_allclose(at_edge.scores, expected, atol=1e-6)
    assert at_edge.decisions == [decide(p, THRESHOLDS) for p in expected]
    at_centre = endpoint.score(rows)
    assert at_centre.served_by["tier"] == "center" and at_centre.fallback is None
    np.testing.assert_allclose(at_centre.scores, expected, atol=1e-6)
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    assert nodes[at_edge.served_by["node_id"]]["Labels"]["tier"] == "edge"
    handle_answer = endpoint.handle().score.remote(rows[:2], "branch-sh").result()
    assert handle_answer["served_by"]["tier"] == "edge" and len(handle_answer["scores"]) == 2
    auth = endpoint.headers()
    via_router = httpx.post(endpoint.site_url("branch-sh"), headers=auth, json={"rows": rows, "request_id": "tx-0002"}).json()
    assert via_router["served_by"]["tier"] == "edge" and via_router["request_id"] == "tx-0002"
    np.testing.assert_allclose(via_router["scores"], expected, atol=1e-6)
    # the scoring applications' own routes (the client's one-hop path) answer for their tier only
    assert httpx.post(endpoint.centre_route, headers=auth, json={"rows": rows[:1]}).json()["served_by"]["tier"] == "center"
    wrong = httpx.get(endpoint.edge_route("branch-sh"), headers=endpoint.headers())
    assert wrong.status_code == 405 and "POST" in wrong.json()["error"]
    not_object = httpx.post(endpoint.edge_route("branch-sh"), headers=auth, json=[1, 2])
    assert not_object.status_code == 400 and not_object.json()["error"].startswith("body: send a JSON object")
    listed = {d["app"]: d for d in client.request("GET", "/deployments")}
    assert listed["fraud-v1"]["deployments"] == {"router": "HEALTHY", "centre": "HEALTHY",
                                                 "edge:branch-sh": "HEALTHY"}
    events = [(e["actor"], e["action"], e["version"]) for e in registry.events("fraud")]
    assert events[-1][1] == "deploy" and events[-1][2] == 1


def test_scoring_routes_need_a_scoring_token_of_the_version(served, trained):  # noqa: F811
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from runtime.client import SpecError
    from runtime.serving.tokens import ScoringKeys

    client, registry, root = served
    endpoint = client.deploy(registry.root, "fraud", version=1, sites=["branch-sh"])
    body = {"rows": rows_of(trained, 1)}
    scoring_keys = ScoringKeys(root / "state")  # the server's own scoring key, read from its state directory
    valid = endpoint.token_source()["token"]
    claims = jwt.decode(valid, options={"verify_signature": False})
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    expired = scoring_keys.issue("admin", "admin", "default", "fraud-v1", ttl_s=1)["token"]
    other_version = scoring_keys.issue("admin", "admin", "default", "fraud-v9")["token"]
    wrong_scope = jwt.encode({**claims, "scope": "jobs:submit"}, scoring_keys._key, algorithm="ES256")
    api_token = client.token  # the API's own token is not a scoring token
    time.sleep(1.5)
    cases = [({}, "no token"), ({"Authorization": "Basic eDp5"}, "no token"),
             ({"Authorization": "Bearer garbage"}, "token refused: DecodeError"),
             ({"Authorization": f"Bearer {forged}"}, "token refused: InvalidSignatureError"),
             ({"Authorization": f"Bearer {expired}"}, "expired token"),
             ({"Authorization": f"Bearer {other_version}"}, "not for this deployment (fraud-v1)"),
             ({"Authorization": f"Bearer {wrong_scope}"}, "its scope is 'jobs:submit'"),
             ({"Authorization": f"Bearer {api_token}"}, "token refused: DecodeError")]
    routes = (endpoint.site_url("branch-sh"), endpoint.centre_url, endpoint.edge_route("branch-sh"),
              endpoint.centre_route)
    for url in routes:
        for headers, why in cases:
            answer = httpx.post(url, json=body, headers=headers, timeout=10)
            assert answer.status_code == 401 and why in answer.json()["error"], (url, why, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer" and "scores" not in answer.json()
            assert api_token not in answer.text and valid not in answer.text
        answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {valid}"}, timeout=10)
        assert answer.status_code == 200 and len(answer.json()["scores"]) == 1, (url, answer.text)
    assert httpx.get(f"{endpoint.url}/healthz").status_code == 200  # health stays open: no scores in it
    # who may have one: endpoints:score (business-analyst), not an algorithm engineer; only for a deployed version
    analyst = client.request("POST", "/users", {"name": "scorer", "role": "business-analyst", "tenant": "risk"})["token"]
    engineer = client.request("POST", "/users", {"name": "trainer", "role": "algorithm-engineer"})["token"]
    from runtime import Client

    with Client(address=client.url, token=analyst) as as_analyst:
        issued = as_analyst.scoring_token("fraud-v1")
        assert jwt.decode(issued["token"], options={"verify_signature": False})["sub"] == "scorer"
        answer = httpx.post(endpoint.centre_route, json=body, headers={"Authorization": f"Bearer {issued['token']}"})
        assert answer.status_code == 200
        with pytest.raises(SpecError, match="no application 'fraud-v9'"):
            as_analyst.scoring_token("fraud-v9")
    with Client(address=client.url, token=engineer) as as_engineer:
        with pytest.raises(SpecError, match=r"trainer \(algorithm-engineer\) may not endpoints:score"):
            as_engineer.scoring_token("fraud-v1")
    # the scoring client asks for a new token when one is refused (here: a token for another version)
    handed = iter([{"token": other_version, "expires_at": time.time() + 600}, endpoint.token_source()])
    with ScoringClient(endpoint.edge_route("branch-sh"), endpoint.centre_route, lambda: next(handed)) as scoring:
        assert scoring.score(body["rows"]).via == "edge"  # the edge's 401 was answered by a new token, no failover
    # the caller cannot name the key signatures verify with
    with pytest.raises(SpecError, match="public_key: Extra inputs are not permitted"):
        client.request("POST", "/deployments", {"registry": str(registry.root), "model": "fraud", "version": 1,
                                                "public_key": "/tmp/attacker.pem"})


def test_a_version_signed_by_another_key_is_not_deployed(served, trained, tmp_path):  # noqa: F811
    from runtime.artifacts.signing import generate_keypair
    from runtime.client import SpecError

    client, _, root = served
    other = generate_keypair(tmp_path / "other-keys")
    foreign = Registry(root / "foreign-registry", public_key=other[1])
    foreign.register(make_artifact(tmp_path, trained, other, "v1"), "fraud", actor="mallory")
    with pytest.raises(SpecError, match="fraud:v1 does not verify with the server's trusted key"):
        client.deploy(foreign.root, "fraud", version=1)
    assert [e["action"] for e in foreign.events("fraud")] == ["register"]  # no deploy recorded


class RecordingSession:
    """An ONNX Runtime session that records how many rows each run scored."""

    def __init__(self, session):
        self.session, self.rows_per_run, self.tasks = session, [], []

    def run(self, outputs, feeds):
        import asyncio

        self.rows_per_run.append(len(next(iter(feeds.values()))))
        self.tasks.append(asyncio.current_task())  # the caller's own task, or Serve's batch loop
        return self.session.run(outputs, feeds)


def slow_post(body: dict):
    """A Starlette POST request whose body arrives after 20 ms (as a slow client's would)."""
    import asyncio

    from starlette.requests import Request

    async def receive():
        await asyncio.sleep(0.02)
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def test_overlapping_requests_are_batched_and_a_lone_one_is_scored_at_once(demo_cluster, trained, keys, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    import asyncio

    from ray.serve import batching

    from runtime.serving.replica import ScoringReplica

    # outside a Serve replica, Serve's batch queue cannot read max_ongoing_requests for a warning
    monkeypatch.setattr(batching._BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None)

    artifact = make_artifact(tmp_path, trained, keys, "v1")
    replica = ScoringReplica(str(artifact), str(keys[1]), "cpu", "fraud:v1", "dc1", "center", THRESHOLDS)
    recorder = replica.session = RecordingSession(replica.session)
    rows = rows_of(trained, 8)
    expected = load_artifact(artifact, keys[1]).predict(rows)

    async def lone_then_eight_together():
        lone = await replica(slow_post({"rows": rows[:1]}))
        together = await asyncio.gather(*(replica(slow_post({"rows": [row]})) for row in rows))
        return asyncio.current_task(), lone, together

    caller, lone, together = asyncio.run(lone_then_eight_together())
    # alone: scored at once in the caller's own task, not handed to Serve's batch loop
    assert lone.status_code == 200 and recorder.rows_per_run[0] == 1 and recorder.tasks[0] is caller
    # overlapping: scored together by the batch loop
    assert sum(recorder.rows_per_run[1:]) == 8 and max(recorder.rows_per_run[1:]) > 1
    scores = [json.loads(answer.body)["scores"][0] for answer in together]
    np.testing.assert_allclose(scores, expected, atol=1e-6)  # each request got its own row's score
    assert replica.ongoing == 0


def test_bad_rows_withdrawn_versions_and_bad_settings_are_refused(served, trained, keys):  # noqa: F811
    from runtime.client import SpecError

    client, registry, _ = served
    endpoint = client.deploy(registry.root, "fraud", version=1, sites=["branch-sh"])
    good = rows_of(trained, 2)
    with pytest.raises(ScoringError, match=r"rows\[1\]: missing field\(s\) A3"):
        endpoint.score([good[0], {k: v for k, v in good[1].items() if k != "A3"}], site="branch-sh")
    auth = endpoint.headers()
    infinite = json.dumps({"rows": [{**good[0], "A2": float("inf")}]})  # the Infinity token JSON parsers accept
    for url in (endpoint.site_url("branch-sh"), endpoint.edge_route("branch-sh")):  # router and own route
        answer = httpx.post(url, content=infinite, headers={**auth, "content-type": "application/json"})
        assert answer.status_code == 422 and "rows[0].A2: inf is not finite" in answer.json()["error"], url
    with pytest.raises(ScoringError, match=r"rows\[0\]\.A2: 'ten' is not a number"):
        endpoint.score([{**good[0], "A2": "ten"}])
    with pytest.raises(SpecError, match="fraud:v2 was withdrawn"):
        client.deploy(registry.root, "fraud", version=2)
    with pytest.raises(SpecError, match="no 'fraud' version 7"):
        client.deploy(registry.root, "fraud", version=7)
    with pytest.raises(SpecError, match="max_replicas: 1 is below min_replicas 2"):
        client.deploy(registry.root, "fraud", version=1, min_replicas=2, max_replicas=1)
    apps = {d["app"] for d in client.request("GET", "/deployments")}
    assert "fraud-v2" not in apps and "fraud-v7" not in apps


def test_overload_is_answered_503_with_retry_after_never_late(served, trained, keys):  # noqa: F811
    client, registry, _ = served
    endpoint = client.deploy(registry.root, "fraud", version=1, max_ongoing_requests=1,
                             max_queued_requests=1, max_batch_size=1, retry_after_s=2)
    body, auth = {"rows": rows_of(trained, 200)}, endpoint.headers()

    def flood(send) -> list:
        outcomes, lock = [], threading.Lock()

        def one():
            outcome = send()
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=one) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes

    def through_router():
        answer = httpx.post(endpoint.centre_url, headers=auth, json=body, timeout=30)
        return answer.status_code, answer.headers.get("retry-after")

    statuses = flood(through_router)
    codes = [code for code, _ in statuses]
    assert set(codes) <= {200, 503} and codes.count(503) >= 1 and codes.count(200) >= 1
    # refused by the router (the replica's queue full, or its own requests in flight at their bound)
    # or by Serve (the router's queue full): the delay is the deploy's in each
    assert all(retry == "2" for code, retry in statuses if code == 503), statuses

    def through_client():  # the scoring client's one-hop route to the centre: Overloaded with the delay
        try:
            with endpoint.client() as scoring:
                return len(scoring.score(body["rows"]).scores)
        except Overloaded as exc:
            return f"overloaded, retry after {exc.retry_after_s:g} s"

    outcomes = flood(through_client)
    assert set(outcomes) == {len(body["rows"]), "overloaded, retry after 2 s"}, sorted(set(map(str, outcomes)))
    from runtime.client import SpecError

    with pytest.raises(SpecError, match="retry_after_s"):
        client.deploy(registry.root, "fraud", version=1, retry_after_s=-1)


def test_the_router_answers_504_at_the_request_deadline_when_the_centre_stalls(served, trained, keys):  # noqa: F811
    import signal

    import psutil

    from runtime.client import SpecError
    from runtime.serving.router import DeadlineExceeded

    client, registry, _ = served
    # one ongoing and one queued per scoring replica: the router admits 2 x (1 + 1) = 4 in flight
    endpoint = client.deploy(registry.root, "fraud", version=1, request_deadline_ms=1500,
                             max_ongoing_requests=1, max_queued_requests=1, max_batch_size=1)
    body, auth = {"rows": rows_of(trained, 1)}, endpoint.headers()
    assert httpx.post(endpoint.centre_url, headers=auth, json=body, timeout=10).status_code == 200
    [centre] = [p for p in psutil.process_iter(["cmdline"])
                if "ServeReplica:fraud-v1:centre" in " ".join(p.info["cmdline"] or [])]
    centre.send_signal(signal.SIGSTOP)  # the centre's replica stalls: what reaches it gets no answer
    try:
        began = time.monotonic()
        answer = httpx.post(endpoint.centre_url, json=body, headers={**auth, "X-Request-Timeout-Ms": "300"}, timeout=10)
        took = time.monotonic() - began
        assert answer.status_code == 504 and answer.headers["retry-after"] == "1", answer.text
        assert "deadline: no answer within 300 ms" in answer.json()["error"] and answer.json()["request_id"]
        assert 0.3 <= took < 1.2, took  # at the caller's deadline, not the deployment's 1.5 s
        began = time.monotonic()
        answer = httpx.post(endpoint.centre_url, headers=auth, json=body, timeout=10)
        assert answer.status_code == 504 and 1.5 <= time.monotonic() - began < 3, answer.text
        with pytest.raises(DeadlineExceeded):  # the Python handle's equivalent
            endpoint.handle().score.remote(body["rows"], None, None, 0.3).result(timeout_s=10)
        # more callers than the router admits, all stalled: the excess is refused at once, none waits
        # for a slot and then for its own deadline (each answer within the caller's 600 ms)
        answers, lock = [], threading.Lock()

        def stalled_call():
            sent = time.monotonic()
            answer = httpx.post(endpoint.centre_url, json=body, headers={**auth, "X-Request-Timeout-Ms": "600"}, timeout=10)
            with lock:
                answers.append((answer.status_code, time.monotonic() - sent, answer.headers.get("retry-after")))

        callers = [threading.Thread(target=stalled_call) for _ in range(10)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        codes = [code for code, _, _ in answers]
        assert set(codes) <= {503, 504} and codes.count(503) >= 6, answers
        assert all(took < 1.0 and retry == "1" for _, took, retry in answers), answers
    finally:
        centre.send_signal(signal.SIGCONT)
    assert centre.is_running()  # the stall did not get the replica replaced
    answer = httpx.post(endpoint.centre_url, headers=auth, json=body, timeout=10)  # the stall over, answers again
    assert answer.status_code == 200 and len(answer.json()["scores"]) == 1
    answer = httpx.post(endpoint.centre_url, json=body, headers={**auth, "X-Request-Timeout-Ms": "soon"}, timeout=10)
    assert answer.status_code == 400 and "X-Request-Timeout-Ms: 'soon'" in answer.json()["error"]
    with pytest.raises(SpecError, match="request_deadline_ms: 100 is below edge_deadline_ms 150"):
        client.deploy(registry.root, "fraud", version=1, request_deadline_ms=100)


def test_edge_loss_under_load_loses_no_request_and_the_edge_comes_back(served, trained, keys, demo_cluster):  # noqa: F811
    client, registry, _ = served
    endpoint = client.deploy(registry.root, "fraud", version=1, sites=["branch-sh"],
                             edge_deadline_ms=150)
    rows, auth = rows_of(trained, 1), endpoint.headers()
    answers, errors, fallbacks, stop = [], [], [], threading.Event()
    plain_answers, plain_errors = [], []  # a caller without the scoring client: the router fails over

    def load():
        with ScoringClient(endpoint.edge_route("branch-sh"), endpoint.centre_route, endpoint.token_source,
                           deadline_s=0.3, centre_timeout_s=10) as scoring:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    result = scoring.score(rows, request_id=f"r{n}")
                    answers.append((time.time(), result.served_by["tier"], result.request_id))
                    fallbacks.append(result.fallback)
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    errors.append(repr(exc))
                time.sleep(0.02)

    def plain_load():
        with httpx.Client(timeout=10) as http:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = http.post(endpoint.site_url("branch-sh"), json={"rows": rows, "request_id": f"p{n}"},
                                       headers=auth)
                    answer.raise_for_status()
                    plain_answers.append((time.time(), answer.json()["served_by"]["tier"], answer.json().get("fallback")))
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    plain_errors.append(repr(exc))
                time.sleep(0.05)

    worker, plain_worker = threading.Thread(target=load), threading.Thread(target=plain_load)
    worker.start()
    plain_worker.start()
    wait_for(lambda: sum(1 for _, tier, _ in answers if tier == "edge") >= 20, 60, "edge answers")
    edge = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Labels"].get("tier") == "edge")
    killed = time.time()
    demo_cluster.remove_node(edge)
    wait_for(lambda: any(t > killed + 2 for t, _, _ in answers), 30, "answers after the kill")
    after = [(t, tier) for t, tier, _ in answers if t > killed]
    first_centre = next(t for t, tier in after if tier == "center")
    demo_cluster.add_node_like(3)  # the edge machine comes back
    wait_for(lambda: any(t > killed and tier == "edge" for t, tier, _ in answers[-5:]), 180, "the edge back")
    wait_for(lambda: any(t > killed and tier == "edge" for t, tier, _ in plain_answers[-5:]), 60,
             "the edge back for plain callers")
    stop.set()
    worker.join()
    plain_worker.join()
    assert errors == [] and plain_errors == []  # every request answered, with and without the client
    assert first_centre - killed <= 2.0  # traffic on the centre within the deadlines and outlier detection
    # the client saw the edge fail, then skipped it and went to the centre directly
    assert any(f and f.startswith("edge") and "paused" not in f for f in fallbacks), set(fallbacks)
    assert "edge paused after consecutive failures" in fallbacks
    # the router did the same for the plain caller, saying why the centre answered
    reasons = {f for t, tier, f in plain_answers if t > killed and tier == "center"}
    assert reasons and all(r and r.startswith("edge") for r in reasons), reasons
    ids = [r for _, _, r in answers]
    assert len(ids) == len(set(ids))  # each request answered once


def test_an_edge_is_skipped_after_consecutive_failures_then_tried_by_one_request_at_a_time():
    from runtime.serving.outlier import EdgeHealth

    health = EdgeHealth(eject_after=3, eject_s=2.0)
    health.failed(10.0)
    health.failed(10.1)
    assert health.admit(10.2) and health.admit(10.2)  # two failures: every request still tried
    health.answered()
    for t in (11.0, 11.1, 11.2):
        health.failed(t)
    assert health.state(11.3) == "paused" and not health.admit(11.3) and not health.admit(13.1)
    # after the pause: one trial request; the others go to the centre until it is answered
    assert health.state(13.2) == "half-open" and health.admit(13.2)
    assert not health.admit(13.25) and not health.admit(13.4)
    health.failed(13.5)  # the trial failed: another whole pause, no second trial meanwhile
    assert health.state(13.6) == "paused" and not health.admit(15.4) and health.admit(15.5)
    assert not health.admit(15.6)
    health.answered()  # the trial answered: the edge takes every request again
    assert health.state(15.7) == "healthy" and health.admit(15.7) and health.admit(15.7)


def test_a_scoring_token_is_verified_once_and_refused_once_it_expires(tmp_path):
    from runtime.serving.tokens import KEY_FILE, ScoringGate, ScoringKeys

    scoring_keys = ScoringKeys(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert ScoringKeys(tmp_path).public_pem == scoring_keys.public_pem  # made once, then read
    gate = ScoringGate(scoring_keys.public_pem, "fraud-v1")
    header = f"Bearer {scoring_keys.issue('scorer', 'business-analyst', 'risk', 'fraud-v1', ttl_s=1)['token']}"
    assert gate.refusal(header) is None and gate.refusal(header) is None  # the second from the cache
    time.sleep(1.1)
    assert gate.refusal(header).startswith("expired token")  # the cache keeps the expiry, not a verdict
    for ttl in (0, 3601):
        with pytest.raises(ValueError, match="ttl_s"):
            scoring_keys.issue("scorer", "business-analyst", "risk", "fraud-v1", ttl_s=ttl)
