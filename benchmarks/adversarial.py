"""The control plane read as an attacker would: every attack of issue 26 and its bad inputs, run
against a real server (its own emulated Ray cluster, its own state directory), each reported with
whether it was refused, what the caller saw, and whether anything else was affected.

While the attacks run, an innocent job of another tenant trains beside them and a watcher polls
/healthz. The summary keys:

- `attacks_tried`, `attacks_refused`: every attack, and those the server refused or contained;
- `jobs_affected`: innocent jobs that did not end SUCCEEDED exactly once;
- `secrets_leaked`: secrets (the admin token, the server's Ray token, registered clusters' tokens)
  found in any answer the attacks got, in the server's log or in the ops page's state;
- `controller_stalled_s`: the longest time the controller's loop went without completing a step,
  beyond its own poll period (0 when it never stalled).

    python benchmarks/adversarial.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import httpx  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from benchmarks._common import SHARED_DATA, emit  # noqa: E402

IDP = "https://idp.bank.example"
STALL_TOLERANCE_S = 2.0  # the loop polls every 0.5 s; a step may take a second on a loaded machine


def log(message: str) -> None:
    print(f"[adversarial {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """One attack's result."""

    name: str
    refused: bool
    caller_saw: str
    detail: str = ""
    answers: list[str] = field(default_factory=list)  # every body the attacker got back (scanned for secrets)


class Harness:
    """A real server on an emulated 1-node cluster, its admin, and the watchers."""

    def __init__(self, root: Path):
        from runtime.server.local import start_server

        self.root = root
        self.state = root / "state"
        self.state.mkdir(parents=True)
        emulation = root / "cluster.yaml"
        emulation.write_text("name: adversarial\nnodes:\n  - {tier: center, site: dc1, count: 1, cpu: 6}\n")
        self.data = root / "data"  # per-tenant data roots: data/<tenant>/
        for tenant in ("attackers", "bystanders"):
            (self.data / tenant).mkdir(parents=True)
        self.idp_key = ec.generate_private_key(ec.SECP256R1())  # an identity provider's signing key
        idp_public = root / "idp.pem"
        idp_public.write_bytes(self.idp_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
        self.proc, self.url = start_server(self.state, "--emulate", str(emulation), "--data-dir", str(self.data),
                                           "--jwt-public-key", str(idp_public), "--jwt-issuer", IDP,
                                           "--jwt-audience", "suanli")
        self.admin = (self.state / "admin.token").read_text().strip()
        self.healthz_samples: list[tuple[float, float]] = []
        self.slowest_step: dict = {}
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                health = httpx.get(self.url + "/healthz", timeout=5).json()
                self.healthz_samples.append((time.time(), health["controller"]["last_step_at"]))
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            self._stop.wait(0.25)

    def client(self, token: str | None = None):
        from runtime.client import Client

        return Client(address=self.url, token=token or self.admin)

    def call(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def user(self, name: str, role: str, tenant: str) -> str:
        answer = self.call("POST", "/users", json={"name": name, "role": role, "tenant": tenant})
        answer.raise_for_status()
        return answer.json()["token"]

    def secrets(self) -> dict[str, str]:
        """Every secret the server holds that must never appear in an answer, log or page."""
        found = {"admin token": self.admin}
        ray_token = self.state / "ray-auth-token"
        if ray_token.exists():
            found["server's Ray token"] = ray_token.read_text().strip()
        return found

    def controller_stalled_s(self) -> float:
        worst = 0.0
        for at, last_step in self.healthz_samples:
            if last_step:
                worst = max(worst, at - last_step - STALL_TOLERANCE_S)
        return round(max(0.0, worst), 2)

    def close(self) -> str:
        self._stop.set()
        self._watcher.join(timeout=10)
        self.proc.terminate()
        self.proc.wait(timeout=120)
        return (self.state / "server.log").read_text(errors="replace")


# ---- hostile user code: run directories -----------------------------------------------------------
def _plant(kind: str, victim: str):
    """A train_fn that plants `kind` in its own attempt directory, then trains on as if nothing."""

    def train_fn(config):
        import json as json_
        import os as os_
        import time as time_
        from pathlib import Path as Path_

        from runtime.rundir import CHECKPOINT_META, PROGRESS_FILE, PROVENANCE_FILE

        run_dir = Path_(config["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        if kind == "meta-without-sha256":
            (run_dir / "checkpoint_000000").mkdir(exist_ok=True)
            (run_dir / "checkpoint_000000" / CHECKPOINT_META).write_text(json_.dumps({"epoch": 0}))
        elif kind == "progress-without-epoch":
            (run_dir / PROGRESS_FILE).write_text(json_.dumps({"loss": 0.1}) + "\n")
        elif kind == "progress-link-to-dev-zero":
            os_.symlink("/dev/zero", run_dir / PROGRESS_FILE)
        elif kind == "progress-of-several-gb":
            with (run_dir / PROGRESS_FILE).open("wb") as f:
                f.truncate(4 << 30)  # sparse: 4 GiB to read
        elif kind == "checkpoint-dir-is-a-link":
            os_.symlink("/etc", run_dir / "checkpoint_000001")
        elif kind == "provenance-link-to-another-file":
            os_.symlink(victim, run_dir.parent / PROVENANCE_FILE)
            return
        time_.sleep(60)

    return train_fn


RUN_DIR_ATTACKS = {
    "meta-without-sha256": "missing field 'sha256'",
    "progress-without-epoch": "missing field 'epoch'",
    "progress-link-to-dev-zero": "symbolic link",
    "progress-of-several-gb": "-byte limit",
    "checkpoint-dir-is-a-link": "a checkpoint that is a link",
}


def run_directory_attacks(h: Harness) -> list[Outcome]:
    """Each hostile train_fn must fail its own job, naming the file, within a minute; the
    provenance link must be replaced, never written through."""
    from runtime.specs import TrainingJob

    token = h.user("mallory", "algorithm-engineer", "attackers")
    client = h.client(token)
    victim = h.root / "victim.json"
    victim.write_text('{"owner": "another tenant"}')
    jobs = {kind: client.submit(TrainingJob(name=kind[:30], tenant="attackers", train_fn=_plant(kind, str(victim)),
                                            workers=1, device="cpu", max_failures=0))
            for kind in [*RUN_DIR_ATTACKS, "provenance-link-to-another-file"]}
    outcomes = []
    for kind, job in jobs.items():
        state = job.wait(timeout=300).value
        error = job.info().get("error") or ""
        if kind == "provenance-link-to-another-file":
            intact = victim.read_text() == '{"owner": "another tenant"}'
            outcomes.append(Outcome(f"run-dir: {kind}", intact and state == "SUCCEEDED", f"{state}",
                                    "the victim file is unchanged" if intact else "the victim file was overwritten"))
            continue
        named = RUN_DIR_ATTACKS[kind] in error
        outcomes.append(Outcome(f"run-dir: {kind}", state == "FAILED" and named, f"{state}: {error[:200]}",
                                answers=[json.dumps(job.info(), default=str)]))
    return outcomes


def cancel_races_launch(h: Harness, rounds: int = 8) -> Outcome:
    """Submit and cancel at once, repeatedly: no job may start after it was cancelled."""
    from runtime.specs import TrainingJob

    client = h.client()
    bad = []
    for i in range(rounds):
        job = client.submit(TrainingJob(name=f"race{i}", train_fn=_plant("none", ""), workers=1, device="cpu",
                                        max_failures=0))
        job.cancel()
        job.wait(timeout=300)
        kinds = [e["kind"] for e in job.events() if e["kind"].isupper()]
        if "CANCELLED" in kinds and "STARTING" in kinds[kinds.index("CANCELLED"):]:
            bad.append(job.id)
        if kinds.count("CANCELLED") != 1:
            bad.append(job.id)
    return Outcome("store: cancel racing a launch", not bad, f"{rounds} jobs cancelled at submission",
                   f"inconsistent: {bad}" if bad else "each CANCELLED once, never restarted")


def _refused(name: str, answer: httpx.Response, statuses: tuple[int, ...], detail: str = "") -> Outcome:
    return Outcome(name, answer.status_code in statuses, f"HTTP {answer.status_code}: {answer.text[:200]}", detail,
                   answers=[answer.text])


def api_attacks(h: Harness) -> list[Outcome]:
    """Attacks through the API by authenticated callers: secrets by path, other tenants' files,
    identities from another namespace, roles the SDK used to check alone, oversize records."""
    import jwt
    import pyarrow as pa
    import pyarrow.parquet as pq

    mallory = h.user("mallory2", "algorithm-engineer", "attackers")
    analyst = h.user("ana", "business-analyst", "attackers")
    outcomes = [
        _refused("clusters: a token read from a server-side path", h.call("POST", "/clusters", json={
            "name": "steal", "address": "http://127.0.0.1:9", "site": "dc9",
            "token_file": str(h.state / "admin.token")}), (422,)),
        _refused("deployments: a caller-named public key (as an admin)", h.call("POST", "/deployments", json={
            "registry": str(h.root / "registry"), "model": "m", "version": 1,
            "public_key": "-----BEGIN PUBLIC KEY-----"}), (422,)),
        _refused("registry: promote without artifacts:promote", h.call("POST", "/registry/promote", analyst, json={
            "registry": str(h.root / "registry"), "model": "m", "version": 1}), (403,)),
    ]
    big = {"blob": "x" * (10 << 20)}
    answer = h.call("POST", "/audit/events", json={"type": "artifact-signed", "detail": big})
    after = h.call("POST", "/audit/events", json={"type": "artifact-signed", "detail": {"after": "the big one"}})
    outcomes.append(Outcome("audit: a 10 MB event", answer.status_code == 413 and after.status_code == 201,
                            f"HTTP {answer.status_code}: {answer.text[:160]}; the next event: HTTP {after.status_code}",
                            answers=[answer.text, after.text]))
    # a JWT whose subject is a local user's name: not that user, and no local token
    claims = {"sub": "mallory2", "iss": IDP, "aud": "suanli", "exp": time.time() + 300,
              "suanli_role": "algorithm-engineer", "suanli_tenant": "attackers"}
    token = jwt.encode(claims, h.idp_key, algorithm="ES256")
    whoami = h.call("GET", "/whoami", token)
    minted = h.call("POST", "/tokens", token, json={"user": "mallory2"})
    own = h.call("POST", "/tokens", token, json={})
    outcomes.append(Outcome("jwt: a subject equal to a local user's name",
                            whoami.json().get("name") != "mallory2" and minted.status_code == 403
                            and own.status_code == 403,
                            f"whoami {whoami.json().get('name')!r}; minting for mallory2: HTTP {minted.status_code}; "
                            f"for itself: HTTP {own.status_code}", answers=[whoami.text, minted.text, own.text]))
    # feature jobs: another tenant's root, an existing file, a path out of the root
    victim = h.data / "bystanders" / "features.parquet"
    pq.write_table(pa.table({"x": [1]}), victim)
    events = h.data / "attackers" / "events.parquet"
    pq.write_table(pa.table({"card": [1, 1], "ts": [0.0, 1.0], "amount": [1.0, 2.0]}), events)
    mine = h.data / "attackers" / "mine.parquet"
    pq.write_table(pa.table({"x": [1]}), mine)
    base = {"name": "feat", "tenant": "attackers", "input": str(events), "keys": ["card"], "time_column": "ts",
            "amount_column": "amount"}
    for name, output, statuses in [("another tenant's root", victim, (403,)), ("an existing file", mine, (409,)),
                                   ("a path out of the root", h.data / "attackers" / ".." / "escape.parquet",
                                    (403, 422))]:
        outcomes.append(_refused(f"features: an output in {name}",
                                 h.call("POST", "/jobs", mallory, json={"kind": "features",
                                                                        "spec": {**base, "output": str(output)}}),
                                 statuses))
    intact = pq.read_table(victim).to_pydict() == {"x": [1]} and not (h.data / "escape.parquet").exists()
    outcomes[-3].refused &= intact
    return outcomes


def audit_truncation(h: Harness) -> Outcome:
    """After the server stopped: delete the log's newest records together with the checkpoints that
    cover them, then verify with the key pinned outside the log, as an auditor would."""
    import subprocess

    from runtime.audit.log import CHECKPOINTS, PUBLIC_KEY_FILE, segments

    audit = h.state / "audit"
    pinned = h.root / "pinned-audit-key.pem"
    pinned.write_bytes((audit / PUBLIC_KEY_FILE).read_bytes())  # the operator's copy, made at install
    records = [json.loads(line) for segment in segments(audit) for line in segment.read_bytes().splitlines()]
    first_deleted = records[-1]["seq"] - 4
    for path in [*segments(audit), audit / CHECKPOINTS]:
        kept = [line for line in path.read_bytes().splitlines() if json.loads(line)["seq"] < first_deleted]
        path.write_bytes(b"".join(line + b"\n" for line in kept))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
    done = subprocess.run([sys.executable, "-m", "runtime.cli.main", "audit", "verify", "--state-dir", str(h.state),
                           "--public-key", str(pinned)], capture_output=True, text=True, timeout=300, env=env)
    named = done.returncode != 0 and f"records {first_deleted}-" in done.stderr and "missing" in done.stderr
    return Outcome("audit: the newest records deleted with their checkpoints", named,
                   (done.stderr or done.stdout).strip()[-200:], answers=[done.stdout, done.stderr])


def innocent_job(h: Harness):
    """A job of another tenant that must succeed, once, whatever the attacks do."""
    from runtime.specs import TrainingJob

    token = h.user("victoria", "algorithm-engineer", "bystanders")
    dataset = h.data / "bystanders" / "australian_credit.csv"  # inside the server's --data-dir
    shutil.copyfile(SHARED_DATA / "credit" / "australian_credit.csv", dataset)
    return h.client(token).submit(TrainingJob(
        name="innocent", tenant="bystanders", dataset=str(dataset),
        label="class", workers=1,
        device="cpu", epochs=4, hidden=[16]))


ATTACKS: list[Callable[[Harness], list[Outcome]]] = [
    api_attacks,
    run_directory_attacks,
    lambda h: [cancel_races_launch(h)],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="suanli-adversarial-"))
    # a user who once ran `ray start`: a token in ~/.ray (a private HOME here, never the real one)
    os.environ["HOME"] = str(root / "home")
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        os.environ.pop(name, None)
    import subprocess

    subprocess.run([str(Path(sys.executable).with_name("ray")), "get-auth-token", "--generate"], check=True,
                   capture_output=True)
    user_token = (root / "home" / ".ray" / "auth_token").read_text()
    h = Harness(root)
    outcomes = [Outcome("ray: the user's own token in ~/.ray", True, "the server started on its own token",
                        "the server's head uses the state directory's token")]
    try:
        bystander = innocent_job(h)
        for attack in ATTACKS:
            found = attack(h)
            for outcome in found:
                log(f"{'refused' if outcome.refused else 'NOT REFUSED'}: {outcome.name}: {outcome.caller_saw[:160]}")
            outcomes += found
        final = bystander.wait(timeout=600).value
        h.slowest_step = h.call("GET", "/healthz").json()["controller"]["slowest_step"]
        succeeded = [e for e in bystander.events() if e["kind"] == "SUCCEEDED"]
        jobs_affected = 0 if final == "SUCCEEDED" and len(succeeded) == 1 else 1
        page = h.call("GET", "/ui/state").text
        secrets = h.secrets()
    finally:
        server_log = h.close()
    outcomes[0].refused = (root / "home" / ".ray" / "auth_token").read_text() == user_token
    outcomes.append(audit_truncation(h))
    log(f"{'refused' if outcomes[-1].refused else 'NOT REFUSED'}: {outcomes[-1].name}: {outcomes[-1].caller_saw}")
    leaked = sorted({name for name, value in secrets.items() for text in
                     [server_log, page, *(a for o in outcomes for a in [o.caller_saw, *o.answers])] if value in text})
    result = {
        "attacks_tried": len(outcomes), "attacks_refused": sum(o.refused for o in outcomes),
        "jobs_affected": jobs_affected, "secrets_leaked": len(leaked), "secrets_leaked_names": leaked,
        "controller_stalled_s": h.controller_stalled_s(),
        "controller_slowest_step": h.slowest_step,
        "attacks": [{k: v for k, v in asdict(o).items() if k != "answers"} for o in outcomes],
    }
    markdown = (f"| adversarial | {result['attacks_refused']} of {result['attacks_tried']} attacks refused; jobs "
                f"affected {jobs_affected}; secrets leaked {len(leaked)}; controller stalled "
                f"{result['controller_stalled_s']} s |")
    emit("adversarial", result, markdown, args.json)


if __name__ == "__main__":
    main()
