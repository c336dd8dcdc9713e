"""Several Ray clusters behind one server, as an operator meets them: two standalone Ray clusters
on this machine (own ports, temp dirs and auth tokens, dashboards on), registered with
`suanli clusters add`, a server with its own embedded cluster scheduling onto them through Ray's
job-submission API.

- registration: bad input names the field; a token file that is missing or not one line, a wrong
  token, a `--storage` its nodes cannot see and a `token_file` path sent to the API are refused
  with nothing stored; tokens live only in the server's 0600 secrets store (no API answer and no
  other file of the server holds one) and go with their cluster; health and capacity cover every
  cluster;
- a trickling address beside a real cluster: probes end at their deadline, the real one stays
  healthy; a failed Ray job's error ends with its exception line;
- a head SIGKILLed mid-training: the job resumes on the other cluster from its checkpoint and ends
  SUCCEEDED once, no retry used, and its events tell the story;
- a 3 s stall of a head moves nothing; a stall past the threshold fences the attempt, the job
  resumes elsewhere, and when the head comes back its stale run is stopped and reports nothing
  (the ops page, open in headless Chromium, shows the cluster lost and healthy again in place);
- a head in its own network namespace partitioned by taking its veth link down: the same story
  while the cut-off run goes on;
- an edge cluster at the data's site takes its first job and the second overflows to the centre.
"""

import contextlib
import json
import os
import signal
import stat
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, shared_path

pytestmark = pytest.mark.ray


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def kill_drivers(runs_dir: Path) -> None:
    """Job drivers (remote_entry, named by their launch file) of this test's attempts left after
    their head died."""
    from cluster.local_head import head_pids

    for pid in head_pids(str(runs_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def fed():
    from cluster.standalone_head import start_head
    from runtime import Client
    from runtime.server.local import start_server, stop_local_server

    root = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))  # short: Ray's socket paths live under it
    state = root / "state"
    heads = {}
    try:  # whatever fails to start, the heads started before it are stopped
        heads["fa"] = start_head("fa", root, site="bj")
        heads["fb"] = start_head("fb", root, site="sh")
        proc, url = start_server(state, "--data-dir", str(REPO.parent / "shared"), "--lease-ttl", "4", "--lease-renew",
                                 "1", "--cluster-lost-after", "3", "--cluster-healthy-after", "2")
        client = Client(address=url, state_dir=state)
        env = {"SUANLI_SERVER": url, "SUANLI_CONFIG": "", "SUANLI_TOKEN": (state / "admin.token").read_text().strip()}
        try:
            yield {"heads": heads, "client": client, "url": url, "state": state, "root": root, "env": env}
        finally:
            client.close()
            stop_local_server(state)  # the server by pid, then its own embedded head
            proc.wait(timeout=10)
    finally:
        for head in heads.values():
            head.stop()
        kill_drivers(state / "runs")


def cli(fed, *args):
    from runtime.cli.main import app

    return CliRunner().invoke(app, list(args), env=fed["env"])


def health(fed):
    return {c["name"]: c for c in fed["client"].clusters()}


def register(fed, head):
    out = cli(fed, "clusters", "add", head.name, "--address", head.address, "--site", head.site,
              "--token-file", str(head.token_file), "--link", "sh=50e6@30" if head.site == "bj" else "bj=50e6@30")
    assert out.exit_code == 0, out.stdout + out.stderr
    wait_for(lambda: health(fed)[head.name]["health"] == "healthy", 20, f"{head.name} healthy")


def secret_names(fed):
    return sorted(p.name for p in (fed["state"] / "secrets").iterdir())


def assert_no_token_leaked(fed):
    """No answer of the API and no file the server wrote outside its secrets store holds a
    cluster's token."""
    tokens = {name: head.token_file.read_text() for name, head in fed["heads"].items()}
    auth = {"Authorization": f"Bearer {fed['env']['SUANLI_TOKEN']}"}
    answers = "".join(httpx.get(f"{fed['url']}{path}", headers=auth, timeout=30).text
                      for path in ("/clusters", "/capacity", "/ui/state", "/audit/tail"))
    for name, token in tokens.items():
        assert token not in answers, f"{name}'s token in an API answer"
    for path in fed["state"].rglob("*"):
        if path.is_file() and not path.is_relative_to(fed["state"] / "secrets"):
            data = path.read_bytes()
            assert not any(token.encode() in data for token in tokens.values()), f"a token in {path}"


def job_spec(name, epochs=8):
    from runtime import TrainingJob

    return TrainingJob(name=name, dataset=str(shared_path("credit", "australian_credit.csv")), label="class",
                       workers=1, device="cpu", epochs=epochs, hidden=[16], config={"seconds_per_epoch": 2},
                       max_failures=0, clusters=["fa", "fb"])


def test_registration_health_and_capacity(fed):
    heads = fed["heads"]
    bad = cli(fed, "server", "--cluster-lost-after", "0")
    said = " ".join(bad.stderr.replace("│", " ").split())
    assert bad.exit_code == 2 and "'--cluster-lost-after': Input should be greater than or equal to 1" in said, said
    bad = cli(fed, "clusters", "add", "x", "--address", "10.0.0.5:8265")
    assert bad.exit_code == 2 and "address: '10.0.0.5:8265' must be Ray's job-submission" in bad.stderr
    bad = cli(fed, "clusters", "add", "Bad_Name", "--address", "http://127.0.0.1:1")
    assert bad.exit_code == 2 and "name: 'Bad_Name'" in bad.stderr
    bad = cli(fed, "clusters", "add", "x", "--address", "http://127.0.0.1:1", "--token-file", "/nowhere/token")
    assert bad.exit_code == 2 and "--token-file /nowhere/token: does not exist" in bad.stderr, bad.stderr
    two_lines = fed["root"] / "two-lines.token"
    two_lines.write_text(f"{heads['fa'].token_file.read_text()}\nsomething else\n")
    bad = cli(fed, "clusters", "add", "x", "--address", heads["fa"].address, "--token-file", str(two_lines))
    said = " ".join(bad.stderr.split())
    assert bad.exit_code == 2 and f"--token-file {two_lines}: is not a single line (2 lines)" in said, said
    assert "something else" not in bad.stderr
    # the API takes no path to read: the server's own admin token cannot be sent anywhere by naming it
    sent = httpx.post(f"{fed['url']}/clusters", headers={"Authorization": f"Bearer {fed['env']['SUANLI_TOKEN']}"},
                      json={"name": "x", "address": "http://127.0.0.1:1", "token_file": str(fed["state"] / "admin.token")})
    assert sent.status_code == 422 and sent.json()["detail"].startswith("token_file: Extra inputs are not permitted")
    wrong = fed["root"] / "wrong.token"
    wrong.write_text("not-the-token")
    out = cli(fed, "clusters", "add", "wrong", "--address", heads["fa"].address, "--token-file", str(wrong))
    said = " ".join(out.stderr.split())
    assert out.exit_code == 2 and f"token: the cluster at {heads['fa'].address} refused the token given" in said, said
    out = cli(fed, "clusters", "add", "blind", "--address", heads["fa"].address, "--storage", "/nowhere/runs",
              "--token-file", str(heads["fa"].token_file))
    said = " ".join(out.stderr.split())
    assert out.exit_code == 2 and "storage: the nodes of cluster blind cannot use --storage /nowhere/runs: " \
        "/nowhere/runs does not exist on node" in said and "pass --storage with the path" in said, said
    assert {"wrong", "blind"}.isdisjoint(health(fed)) and secret_names(fed) == []  # refused: nothing stored

    register(fed, heads["fa"])
    register(fed, heads["fb"])
    again = cli(fed, "clusters", "add", "fa", "--address", heads["fa"].address)
    assert again.exit_code == 2 and "already registered" in again.stderr
    listed = json.loads(cli(fed, "clusters", "list", "--json").stdout)
    assert [c["name"] for c in listed][1:] == ["fa", "fb"] and listed[0]["own"]
    assert all(c["health"] == "healthy" and c["nodes"] == 1 for c in listed[1:])
    report = fed["client"].capacity()
    assert {"fa", "fb"} <= {r["cluster"] for r in report["rows"]}
    assert {c["name"]: c["health"] for c in report["clusters"]}.items() >= {"fa": "healthy", "fb": "healthy"}.items()
    printed = cli(fed, "capacity").stdout
    assert "Capacity" in printed and "Clusters" in printed and "healthy" in printed

    # the tokens: in the server's secrets store only, 0600, by name; nowhere else the server writes or answers
    assert secret_names(fed) == ["cluster%2Ffa%2Fray-token", "cluster%2Ffb%2Fray-token"]
    for name, head in heads.items():
        stored = fed["state"] / "secrets" / f"cluster%2F{name}%2Fray-token"
        assert stored.read_text() == head.token_file.read_text() and stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert {c["name"]: c.get("token_secret") for c in listed[1:]} == {"fa": "cluster/fa/ray-token",
                                                                      "fb": "cluster/fb/ray-token"}
    assert_no_token_leaked(fed)
    # a cluster's token goes with it
    out = cli(fed, "clusters", "add", "fa-again", "--address", heads["fa"].address, "--token-file",
              str(heads["fa"].token_file))
    assert out.exit_code == 0 and "cluster%2Ffa-again%2Fray-token" in secret_names(fed)
    assert cli(fed, "clusters", "remove", "fa-again").exit_code == 0
    assert "cluster%2Ffa-again%2Fray-token" not in secret_names(fed)


def test_a_trickling_address_never_costs_a_healthy_cluster_its_health(fed):
    """One fake address answering a byte a second (every read succeeds, none ends the answer)
    and one real Ray cluster, probed together by the server's prober for 12 rounds: the
    trickler is lost by its probes' deadline, the real cluster answers every round."""
    from cluster.federation import ClusterEntry, Federation
    from tests.cluster.test_federation_unit import raw_server, trickle

    head = fed["heads"]["fa"]
    token = head.token_file.read_text()
    with raw_server(trickle) as address:
        entries = [ClusterEntry("slow", address, "gz"), ClusterEntry("fa", head.address, head.site)]
        changes = []
        federation = Federation(lambda: entries, on_change=lambda *c: changes.append(c[:2]),
                                token_for={"fa": token}.get)
        federation.start()
        seen = set()
        try:
            deadline = time.time() + 120
            while time.time() < deadline and {s["name"]: s["probes"] for s in federation.status()}.get("fa", 0) < 12:
                seen.add(federation.health("fa"))
                time.sleep(0.2)
            status = {s["name"]: s for s in federation.status()}
        finally:
            federation.stop()
    print(status)
    assert status["fa"]["probes"] >= 12 and status["fa"]["health"] == "healthy" and seen <= {"unknown", "healthy"}
    assert ("fa", "lost") not in changes and status["fa"]["nodes"] == 1
    assert status["slow"]["health"] == "lost" and status["slow"]["last_error"] == "timed out after 2.0 s"
    assert status["slow"]["probes"] >= 10  # probed every round too, each ended at its deadline


def test_a_failed_ray_jobs_error_ends_with_its_exception_line(fed):
    """A Ray job on a registered cluster failing deep in a traceback: the attempt's error, as the
    remote backend reports it, keeps the exception line (a cut from the start lost it)."""
    import shlex
    import sys

    from ray.job_submission import JobSubmissionClient

    from cluster.federation import ClusterEntry
    from runtime.backends.ray_remote import RemoteRayBackend

    head = fed["heads"]["fb"]
    token = head.token_file.read_text()
    client = JobSubmissionClient(head.address, headers={"Authorization": f"Bearer {token}"})
    script = ("import sys; sys.setrecursionlimit(100)\n"
              "def deeper(n):\n    return deeper(n - 1) if n else open('/nowhere/runs/j/launch.json')\n"
              "deeper(40)")
    sid = f"suanli-test-deep-{os.getpid()}"
    client.submit_job(entrypoint=f"{sys.executable} -c {shlex.quote(script)}", submission_id=sid)
    backend = RemoteRayBackend(ClusterEntry("fb", head.address, head.site), fed["root"], token=token)
    run_dir = fed["root"] / "deep-runs" / sid / "attempt-1"
    run_dir.mkdir(parents=True)
    handle = {"submission_id": sid, "run_dir": str(run_dir)}
    wait_for(lambda: backend.poll(handle).phase == "failed", 120, "the Ray job failed")
    status = backend.poll(handle)
    print(status.error)
    assert status.error.startswith(f"the Ray job {sid} on fb ended FAILED: Job entrypoint command failed")
    assert status.error.endswith("FileNotFoundError: [Errno 2] No such file or directory: '/nowhere/runs/j/launch.json'")
    assert "\n" not in status.error and len(status.error) <= 400


def test_head_killed_mid_training_resumes_on_the_other_cluster_once(fed):
    client, heads = fed["client"], fed["heads"]
    if health(fed).get("fa", {}).get("health") != "healthy":
        register(fed, heads["fa"])
        register(fed, heads["fb"])
    job = client.submit(job_spec("fed-kill"))
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 2, 240, "two epochs")
    first = job.info()["placement"]["cluster"]
    other = "fb" if first == "fa" else "fa"
    checkpoints_before = client.request("GET", f"/jobs/{job.id}/checkpoints")
    killed_at = time.time()
    assert heads[first].signal(signal.SIGKILL) > 0
    lost = wait_for(lambda: health(fed)[first]["health"] == "lost" and time.time(), 20, f"{first} lost")
    assert lost - killed_at <= 12  # probes every 2 s, lost after 3 missed
    assert job.wait(timeout=300).value == "SUCCEEDED"
    story = [e["detail"] for e in job.events()]
    assert sum(1 for e in job.events() if e["kind"] == "SUCCEEDED") == 1
    fenced = [d for d in story if d.startswith(f"cluster {first} lost") and "attempt 1 fenced" in d]
    resumed = next(d for d in story if f"resumed on cluster {other} from epoch" in d)
    assert any("resumes from epoch" in d for d in fenced) and resumed.startswith(f"cluster {first} lost")
    print("\n".join(f"{e['kind']}: {e['detail']}" for e in job.events()))
    info = job.info()
    assert info["failures"] == 0 and info["placement"]["cluster"] == other
    epochs = job.result().provenance["modelling"]["epochs"]
    resumed_from = max(e["resumed_from_epoch"] for e in epochs)
    assert epochs[-1]["epoch"] == 7
    # steps repeated <= one checkpoint interval: it resumed from the newest checkpoint recorded
    assert checkpoints_before and resumed_from >= max(c["epoch"] for c in checkpoints_before)
    attempts = {a["number"]: a for a in client.request("GET", f"/jobs/{job.id}/placement")["attempts"]}
    assert attempts[1]["outcome"] == "fenced" and attempts[2]["outcome"] == "succeeded"

    # the lost cluster is replaced by a new head under the same name (a new address)
    from cluster.standalone_head import start_head

    heads[first].stop()
    kill_drivers(fed["state"] / "runs")
    heads[first] = start_head(first, fed["root"], site=heads[first].site)
    assert cli(fed, "clusters", "remove", first).exit_code == 0
    register(fed, heads[first])


def test_short_stall_moves_nothing_and_a_long_one_fences_and_stops_the_stale_run(fed, browser):
    from urllib.parse import quote

    client, heads = fed["client"], fed["heads"]
    job = client.submit(job_spec("fed-stall", epochs=10))
    wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 1, 240, "the first epoch")
    first = job.info()["placement"]["cluster"]
    head = heads[first]

    head.signal(signal.SIGSTOP)
    time.sleep(3)
    head.signal(signal.SIGCONT)
    time.sleep(4)
    assert health(fed)[first]["health"] == "healthy"
    assert not any("fenced" in e["detail"] for e in job.events()) and job.info()["attempts"] == 1

    page = browser.new_page()  # the ops page, open through the stall: the row turns lost, then healthy, in place
    page.goto(f"{fed['url']}/ui#token={quote(fed['env']['SUANLI_TOKEN'], safe='')}")
    row = page.locator(f"#clusters tr[data-key='{first}']")
    row.and_(page.locator("[data-health='healthy']")).wait_for(timeout=15_000)
    page.evaluate("window.sameDocument = true")
    head.signal(signal.SIGSTOP)
    try:
        row.and_(page.locator("[data-health='lost']")).wait_for(timeout=30_000)
        assert "lost since" in row.inner_text() and page.inner_text("#clusters-summary").endswith("1 lost")
        wait_for(lambda: any("fenced" in e["detail"] for e in job.events()), 30, "the attempt fenced")
        fenced_at = time.time()
        wait_for(lambda: job.info()["attempts"] == 2 and job.info()["state"] in ("STARTING", "RUNNING"), 60,
                 "a second attempt elsewhere")
    finally:
        head.signal(signal.SIGCONT)
    wait_for(lambda: any("stale run of attempt 1 was stopped" in e["detail"] for e in job.events()), 60,
             "the stale run stopped")
    row.and_(page.locator("[data-health='healthy']")).wait_for(timeout=30_000)
    assert page.evaluate("window.sameDocument") is True
    page.close()
    assert job.wait(timeout=300).value == "SUCCEEDED"
    assert sum(1 for e in job.events() if e["kind"] == "SUCCEEDED") == 1
    attempts = {a["number"]: a for a in client.request("GET", f"/jobs/{job.id}/placement")["attempts"]}
    assert attempts[1]["outcome"] == "fenced-stopped" and attempts[2]["outcome"] == "succeeded"
    stale_dir = Path(attempts[1]["handle"]["run_dir"])
    status = stale_dir / "status.json"
    assert not status.exists() or status.stat().st_mtime <= fenced_at
    assert (stale_dir / "FENCED").exists()
    # no checkpoint of the stale attempt was recorded after it was fenced
    recorded = client.request("GET", f"/jobs/{job.id}/checkpoints")
    assert all(c["at"] <= fenced_at for c in recorded if c["attempt"] == 1)
    submission = attempts[1]["handle"]["submission_id"]

    def stale_job_status():
        return httpx.get(f"{head.address}/api/jobs/{submission}", timeout=5,
                         headers={"Authorization": f"Bearer {head.token_file.read_text()}"}).json()["status"]

    assert wait_for(lambda: stale_job_status() in ("STOPPED", "SUCCEEDED", "FAILED"), 60, "the stale Ray job ended")


@contextlib.contextmanager
def network_namespace():
    """A network namespace joined to this one by a veth pair: (namespace, the host side's interface,
    the namespace's address). Cutting the host side down partitions it; removed at the end."""
    import random
    import subprocess

    assert os.geteuid() == 0, "the partition test needs root for ip netns (CI runs as root)"
    tag = f"{os.getpid() % 10000}{random.randint(0, 99)}"
    ns, host_side, ns_side, net = f"sf{tag}", f"vh{tag}", f"vn{tag}", f"10.231.{random.randint(1, 250)}"

    def ip(*args, inside=False):
        subprocess.run((["ip", "netns", "exec", ns] if inside else []) + ["ip", *args], check=True,
                       capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host_side, "type", "veth", "peer", "name", ns_side)
        ip("link", "set", ns_side, "netns", ns)
        ip("addr", "add", f"{net}.1/30", "dev", host_side)
        ip("link", "set", host_side, "up")
        ip("addr", "add", f"{net}.2/30", "dev", ns_side, inside=True)
        ip("link", "set", ns_side, "up", inside=True)
        ip("link", "set", "lo", "up", inside=True)
        yield ns, host_side, f"{net}.2"
    finally:
        subprocess.run(["ip", "link", "del", host_side], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_partitioned_cluster_is_fenced_and_its_job_resumes_elsewhere_once(fed):
    import subprocess

    from cluster.standalone_head import start_head

    client = fed["client"]
    if health(fed).get("fa", {}).get("health") != "healthy":
        register(fed, fed["heads"]["fa"])
    with network_namespace() as (ns, host_side, address):
        head = start_head("fc", fed["root"], site="gz", netns=ns, host=address)
        try:
            out = cli(fed, "clusters", "add", "fc", "--address", head.address, "--site", "gz",
                      "--token-file", str(head.token_file), "--link", "bj=50e6@30")
            assert out.exit_code == 0, out.stdout + out.stderr
            wait_for(lambda: health(fed)["fc"]["health"] == "healthy", 30, "fc healthy across the veth")
            spec = job_spec("fed-partition", epochs=8).model_copy(update={"clusters": ["fc", "fa"], "data_site": "gz"})
            job = client.submit(spec)
            wait_for(lambda: (job.info()["progress"] or {}).get("epochs_done", 0) >= 2, 240, "two epochs")
            assert job.info()["placement"]["cluster"] == "fc"  # next to its data
            cut_at = time.time()
            subprocess.run(["ip", "link", "set", host_side, "down"], check=True)
            try:
                lost = wait_for(lambda: health(fed)["fc"]["health"] == "lost" and time.time(), 20, "fc lost")
                assert lost - cut_at <= 12
                wait_for(lambda: any("fenced" in e["detail"] for e in job.events()), 30, "the attempt fenced")
                fenced_at = time.time()
                wait_for(lambda: job.info()["attempts"] == 2 and job.info()["state"] in ("STARTING", "RUNNING"), 90,
                         "a second attempt on fa")
            finally:
                subprocess.run(["ip", "link", "set", host_side, "up"], check=True)
            wait_for(lambda: health(fed)["fc"]["health"] == "healthy", 30, "fc healthy after the partition")
            wait_for(lambda: any("stale run of attempt 1 was stopped" in e["detail"] for e in job.events()), 60,
                     "the stale run stopped")
            assert job.wait(timeout=300).value == "SUCCEEDED"
            assert sum(1 for e in job.events() if e["kind"] == "SUCCEEDED") == 1
            attempts = {a["number"]: a for a in client.request("GET", f"/jobs/{job.id}/placement")["attempts"]}
            assert attempts[1]["outcome"] == "fenced-stopped" and attempts[2]["outcome"] == "succeeded"
            assert attempts[2]["placement"]["cluster"] == "fa"
            recorded = client.request("GET", f"/jobs/{job.id}/checkpoints")
            assert all(c["at"] <= fenced_at for c in recorded if c["attempt"] == 1)
            status = Path(attempts[1]["handle"]["run_dir"]) / "status.json"
            assert not status.exists() or status.stat().st_mtime <= fenced_at + 1  # the stale run went quiet
            story = "\n".join(f"{e['kind']}: {e['detail']}" for e in job.events())
            print(story)
            assert "cluster fc lost" in story and "resumed on cluster fa from epoch" in story
        finally:
            cli(fed, "clusters", "remove", "fc")
            head.stop()


def test_an_edge_cluster_takes_its_sites_jobs_until_full_then_they_overflow_to_the_centre(fed):
    from cluster.standalone_head import start_head

    client, heads = fed["client"], fed["heads"]
    # fb becomes a small edge site (one CPU) at sh, where the data lies; fa is the centre at bj
    assert cli(fed, "clusters", "remove", "fb").exit_code == 0
    heads["fb"].stop()
    heads["fb"] = start_head("fb", fed["root"], site="sh", tier="edge", num_cpus=1)
    out = cli(fed, "clusters", "add", "fb", "--address", heads["fb"].address, "--site", "sh", "--tier", "edge",
              "--token-file", str(heads["fb"].token_file), "--link", "bj=50e6@30")
    assert out.exit_code == 0, out.stdout + out.stderr
    wait_for(lambda: health(fed)["fb"]["health"] == "healthy", 20, "fb healthy")

    at_edge = client.submit(job_spec("edge-1", epochs=4).model_copy(update={"data_site": "sh"}))
    wait_for(lambda: (at_edge.info()["placement"] or {}).get("cluster"), 60, "the first job placed")
    overflow = client.submit(job_spec("edge-2", epochs=2).model_copy(update={"data_site": "sh"}))
    assert at_edge.wait(timeout=300).value == "SUCCEEDED" and overflow.wait(timeout=300).value == "SUCCEEDED"
    assert at_edge.info()["placement"]["cluster"] == "fb" and overflow.info()["placement"]["cluster"] == "fa"
    placed = {job.id: next(e["detail"] for e in job.events() if e["kind"] == "STARTING") for job in (at_edge, overflow)}
    print("\n".join(placed.values()))
    assert "on cluster fb at sh (edge)" in placed[at_edge.id] and "no room" not in placed[at_edge.id]
    assert "on cluster fa at bj (center)" in placed[overflow.id]
    assert "data at sh; the edge at sh has no room (0 free where 1 cpu are needed): overflow" in placed[overflow.id]
