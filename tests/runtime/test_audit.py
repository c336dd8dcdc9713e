"""The audit log: records chained and checkpoints signed; 1,000 random tamperings of an archived
log (byte edits, deleted, inserted, swapped and truncated records, forged checkpoints) are all
detected, each naming the first bad sequence number; several processes append to one chain."""

import json
import random
import shutil
import subprocess
import sys

import pytest

from runtime.audit.log import CHECKPOINTS, PUBLIC_KEY_FILE, AuditLog, load_public_key
from runtime.audit.verify import verify_log
from tests.conftest import REPO

RECORDS = 120


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """An archived log: RECORDS records over several segments and a few signed checkpoints."""
    directory = tmp_path_factory.mktemp("audit")
    log = AuditLog(directory, max_segment_bytes=6_000)
    for i in range(RECORDS):
        log.append("job-state", f"user{i % 3}", {"job": f"j{i}", "state": "QUEUED"}, level="info")
        if i % 37 == 36:
            log.checkpoint()
    log.close()  # the shutdown checkpoint covers every record
    return directory


def lines_by_record(directory):
    """[(segment, line index)] for records 1..N, in order."""
    out = []
    for segment in sorted(directory.glob("audit-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        for i, _ in enumerate(segment.read_bytes().splitlines()):
            out.append((segment, i))
    return out


def rewrite(segment, mutate):
    lines = segment.read_bytes().splitlines()
    mutate(lines)
    segment.write_bytes(b"".join(line + b"\n" for line in lines))


def tamper(directory, rng):
    """Apply one random tampering; the sequence number verification must name."""
    where = lines_by_record(directory)
    kind = rng.choice(["byte", "delete", "insert", "swap", "truncate", "checkpoint"])
    k = rng.randrange(1, RECORDS + 1)
    segment, index = where[k - 1]
    if kind == "byte":
        data = bytearray(segment.read_bytes())
        start = sum(len(line) + 1 for line in data.splitlines()[:index])
        position = start + rng.randrange(len(data.splitlines()[index]))
        data[position] = (data[position] + rng.randrange(1, 256)) % 256
        segment.write_bytes(bytes(data))
        return kind, k
    if kind == "delete":
        rewrite(segment, lambda lines: lines.pop(index))
        return kind, k
    if kind == "insert":  # a copy of an earlier record, placed after record k
        j = rng.randrange(1, k + 1)
        source, source_index = where[j - 1]
        copy = source.read_bytes().splitlines()[source_index]
        rewrite(segment, lambda lines: lines.insert(index + 1, copy))
        return kind, k + 1
    if kind == "swap":
        if k == RECORDS or where[k][0] != segment:
            k -= 1
            segment, index = where[k - 1]
        rewrite(segment, lambda lines: lines.__setitem__(slice(index, index + 2), [lines[index + 1], lines[index]]))
        return kind, k
    if kind == "truncate":  # the last records removed
        for seg, i in reversed(where[k - 1:]):
            rewrite(seg, lambda lines, i=i: lines.pop(i))
        return kind, k
    path = directory / CHECKPOINTS  # a forged checkpoint: re-pointed at another record, signature kept
    lines = path.read_bytes().splitlines()
    c = rng.randrange(len(lines))
    body = json.loads(lines[c])
    body["seq"] = rng.randrange(1, RECORDS + 1)
    while body["seq"] == json.loads(lines[c])["seq"]:
        body["seq"] = rng.randrange(1, RECORDS + 1)
    lines[c] = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    return kind, body["seq"]


def test_an_untouched_log_verifies(archived):
    verdict = verify_log(archived, archived / PUBLIC_KEY_FILE)  # untouched here; the attacks below pin a copy
    assert verdict.ok and verdict.records == RECORDS and verdict.checkpoints == 4, verdict.line()
    assert len(list(archived.glob("audit-*.jsonl"))) > 2  # rotated by size, one chain across segments
    assert (archived / "audit-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_thousand_random_tamperings_are_all_detected_naming_the_record(archived, tmp_path):
    rng = random.Random(20261122)
    pinned = load_public_key(archived / PUBLIC_KEY_FILE)  # read before any tampering
    missed, wrong = [], []
    for trial in range(1000):
        copy = tmp_path / f"t{trial}"
        shutil.copytree(archived, copy)
        kind, expected = tamper(copy, rng)
        verdict = verify_log(copy, pinned)
        if verdict.ok:
            missed.append((trial, kind))
        elif verdict.first_bad_seq != expected:
            wrong.append((trial, kind, expected, verdict.first_bad_seq, verdict.reason))
        shutil.rmtree(copy)
    assert missed == [] and wrong == [], (missed[:5], wrong[:5])


def test_processes_appending_together_keep_one_chain(tmp_path):
    code = ("import sys; sys.path.insert(0, {repo!r}); from runtime.audit.log import AuditLog\n"
            "log = AuditLog({dir!r}, component='p{n}')\nfor i in range(100): log.append('t', 'a', {{'i': i}})\n")
    AuditLog(tmp_path)  # the key is created once
    procs = [subprocess.Popen([sys.executable, "-c", code.format(repo=str(REPO), dir=str(tmp_path), n=n)])
             for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    AuditLog(tmp_path).checkpoint()
    verdict = verify_log(tmp_path, tmp_path / PUBLIC_KEY_FILE)
    assert verdict.ok and verdict.records == 300, verdict.line()


def test_levels_are_checked():
    with pytest.raises(ValueError, match="level: 'loud'"):
        AuditLog.append(AuditLog.__new__(AuditLog), "t", "a", level="loud")
