"""The ops page (`/ui`) in a real headless Chromium against a real server over an emulated
centre + edge cluster: what it renders (clusters, capacity per cluster/tier/kind, the queue with
reasons and estimated starts, running jobs, quota use), that it refreshes in place when the state
changes, that each viewer sees only the jobs they may read, that it holds no data without a token,
and `suanli ui`'s signed-in link."""

from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import shared_path

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from runtime.server.local import start_server, stop_local_server

    state = tmp_path_factory.mktemp("state")
    emulation = state / "ops.yaml"
    emulation.write_text("name: ops\nnodes:\n  - {tier: center, site: bj, count: 1, cpu: 2}\n"
                         "  - {tier: edge, site: sh, count: 1, cpu: 1}\n")
    proc, url = start_server(state, "--emulate", str(emulation), "--data-dir", str(shared_path()))
    admin = (state / "admin.token").read_text().strip()
    yield url, state, admin
    stop_local_server(state)
    proc.wait(timeout=60)


def call(url, method, path, token, body=None):
    answer = httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, json=body, timeout=30)
    assert answer.status_code < 300, answer.text
    return answer.json()


def submit(url, token, name, epochs=3):
    body = {"spec": {"name": name, "dataset": str(shared_path("credit", "australian_credit.csv")), "label": "class",
                     "device": "cpu", "epochs": epochs, "hidden": [8], "config": {"seconds_per_epoch": 2}}}
    return call(url, "POST", "/jobs", token, body)["id"]


def open_page(browser, url, token):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{url}/ui#token={quote(token, safe='')}")
    return page


def cells(page, table, key):
    return page.locator(f"#{table} tr[data-key='{key}'] td").all_inner_texts()


def test_the_page_holds_no_data_without_a_token(server, browser):
    url, _, admin = server
    shell = httpx.get(f"{url}/ui", timeout=10)
    assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
    assert "suanli · operations" in shell.text and "ops" not in shell.text.split("<body>")[1].split("<script>")[0]
    assert httpx.get(f"{url}/ui/state", timeout=10).status_code == 401
    page = open_page(browser, url, "sl_0000_notatoken")
    page.wait_for_selector("#login:not([hidden])", timeout=15_000)
    assert "unauthorized: unknown token" in page.inner_text("#login-error")
    assert page.locator("#page").is_hidden()
    page.close()


def test_capacity_queue_quotas_render_and_refresh_in_place(server, browser, tmp_path):
    url, _, admin = server
    alice = call(url, "POST", "/users", admin, {"name": "alice", "role": "algorithm-engineer", "tenant": "risk"})
    bob = call(url, "POST", "/users", admin, {"name": "bob", "role": "algorithm-engineer", "tenant": "risk"})
    call(url, "PUT", "/quotas/tenant/risk", admin, {"jobs": 0})
    job_a = submit(url, alice["token"], "capped-a")
    job_b = submit(url, bob["token"], "capped-b")

    page = open_page(browser, url, admin)
    page.wait_for_selector(f"#queue tr[data-key='{job_a}']", timeout=30_000)
    page.wait_for_function(f"() => document.querySelector(\"#queue tr[data-key='{job_b}']\")?.textContent.includes('quota')",
                           timeout=30_000)
    assert "#token" not in page.url  # the token left the address bar (and the history)
    assert page.inner_text("#viewer").startswith("root (admin")
    name, owner, _waited, reason, start = cells(page, "queue", job_a)
    assert name == f"capped-a ({job_a})" and owner == "risk / alice"
    assert reason.startswith("waiting: quota tenant:risk allows 0 concurrent jobs")
    assert start == "–"  # nothing of tenant risk runs: no estimate, and the reason says how to unblock it
    assert "raise it with 'suanli quota set'" in reason
    assert cells(page, "quotas", "tenant:risk/jobs")[:4] == ["tenant:risk", "jobs", "0", "0"]
    centre, edge = cells(page, "capacity", "ops/center/cpu/cpu"), cells(page, "capacity", "ops/edge/cpu/cpu")
    assert centre[:8] == ["ops", "center", "cpu", "cpu", "1", "2", "0", "2"] and centre[9] == "emulated"
    assert edge[:8] == ["ops", "edge", "cpu", "cpu", "1", "1", "0", "1"]
    own = page.locator("#clusters tr[data-key='ops']")
    assert own.get_attribute("data-health") == "healthy" and "the server's own cluster" in own.inner_text()
    shot = page.screenshot(path=str(tmp_path / "ops-page.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    print(f"screenshot: {tmp_path / 'ops-page.png'}")

    # alice sees her job and a count of the rest
    mine = open_page(browser, url, alice["token"])
    mine.wait_for_selector(f"#queue tr[data-key='{job_a}']", timeout=30_000)
    assert mine.locator(f"#queue tr[data-key='{job_b}']").count() == 0
    assert mine.inner_text("#queue-summary") == "1 waiting (+1 of others)"
    mine.close()

    # the cap is raised: the page follows without reloading
    page.evaluate("window.sameDocument = true")
    before = int(page.evaluate("document.body.dataset.refreshes"))
    call(url, "PUT", "/quotas/tenant/risk", admin, {"jobs": 1})
    page.wait_for_selector(f"#active tr[data-key='{job_a}'], #active tr[data-key='{job_b}']", timeout=60_000)
    page.wait_for_function("() => document.querySelector(\"#quotas tr[data-key='tenant:risk/jobs']\")"
                           "?.children[2].textContent === '1'", timeout=30_000)
    running = job_a if page.locator(f"#active tr[data-key='{job_a}']").count() else job_b
    waiting = job_b if running == job_a else job_a
    assert page.locator(f"#queue tr[data-key='{running}']").count() == 0
    row = cells(page, "active", running)
    assert row[3] == "ops" and row[4].endswith("cpu(cpu)")
    # the one still waiting now has an estimate: when the running job of its tenant should end
    page.wait_for_function(f"() => /^\\d\\d:\\d\\d:\\d\\d \\((in |due)/.test(document.querySelector("
                           f"\"#queue tr[data-key='{waiting}']\")?.children[4].textContent)", timeout=30_000)
    assert "quota tenant:risk allows 1 concurrent jobs, 1 running" in cells(page, "queue", waiting)[3]
    assert page.evaluate("window.sameDocument") is True
    assert int(page.evaluate("document.body.dataset.refreshes")) > before
    page.close()
    for job in (job_a, job_b):
        call(url, "POST", f"/jobs/{job}/cancel", admin, {})
    call(url, "PUT", "/quotas/tenant/risk", admin, {})


def test_suanli_ui_prints_a_signed_in_link(server):
    from runtime.cli.main import app

    url, _, admin = server
    env = {"SUANLI_SERVER": url, "SUANLI_TOKEN": admin, "SUANLI_CONFIG": ""}
    out = CliRunner().invoke(app, ["ui"], env=env)
    assert out.exit_code == 0 and out.stdout.strip() == f"{url}/ui#token={quote(admin, safe='')}", out.stdout
    out = CliRunner().invoke(app, ["ui", "--no-sign-in"], env=env)
    assert out.stdout.strip() == f"{url}/ui"
    analyst = call(url, "POST", "/users", admin, {"name": "ana", "role": "business-analyst", "tenant": "risk"})
    out = CliRunner().invoke(app, ["ui"], env={**env, "SUANLI_TOKEN": analyst["token"]})
    assert out.exit_code == 2 and "may not capacity:read" in out.stderr
