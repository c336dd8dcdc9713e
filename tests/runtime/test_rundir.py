"""The run directory's owner refuses what a user's code can plant there: links (to /dev/zero, to
another tenant's file, a linked attempt or checkpoint directory), FIFOs, oversize files and
records without their fields; and its own writes never follow a link."""

import os

import pytest

from runtime.rundir import MAX_LINES_BYTES, AttemptDir, RunFileError, RunsDir
from runtime.training.checkpoints import checkpoint_digest


@pytest.fixture
def attempt(tmp_path):
    runs = RunsDir(tmp_path / "runs")
    runs.root.mkdir()
    found = runs.attempt("job-1", 1)
    found.create()
    return found


def test_links_and_special_files_are_refused_never_followed(attempt, tmp_path):
    (attempt.path / "progress.jsonl").symlink_to("/dev/zero")
    with pytest.raises(RunFileError, match="job-1/attempt-1/progress.jsonl: a symbolic link"):
        attempt.progress()
    os.unlink(attempt.path / "progress.jsonl")
    os.mkfifo(attempt.path / "progress.jsonl")  # opening it must not block, nor read it
    with pytest.raises(RunFileError, match="not a regular file"):
        attempt.progress()
    other = tmp_path / "other-tenant.json"
    other.write_text('{"secret": 1}')
    (attempt.path / "evaluation.json").symlink_to(other)
    with pytest.raises(RunFileError, match="symbolic link"):
        attempt.evaluation()
    attempt.write_evaluation({"auc": 0.9})  # replaces the link itself, never writes through it
    assert other.read_text() == '{"secret": 1}' and attempt.evaluation() == {"auc": 0.9}
    (attempt.path / "memory.jsonl").symlink_to(other)
    with pytest.raises(RunFileError, match="symbolic link"):
        attempt.append_memory({"rank": 0})  # an append cannot replace: it refuses
    assert other.read_text() == '{"secret": 1}'


def test_a_linked_attempt_directory_is_refused(tmp_path):
    runs = RunsDir(tmp_path / "runs")
    (runs.root / "job-2").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "progress.jsonl").write_text('{"epoch": 0, "epoch_seconds": 1}\n')
    (runs.root / "job-2" / "attempt-1").symlink_to(elsewhere)
    with pytest.raises(RunFileError, match="job-2/attempt-1/progress.jsonl: a symbolic link"):
        runs.attempt("job-2", 1).progress()
    with pytest.raises(RunFileError):
        runs.attempt("job-2", 1).request_stop()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["progress.jsonl"]
    assert runs.job("job-2").attempts() == []  # a linked attempt is not one of the job's


def test_oversize_files_and_records_without_their_fields_are_named(attempt):
    with (attempt.path / "progress.jsonl").open("wb") as f:
        f.truncate(MAX_LINES_BYTES + 1)  # sparse: "several GB" costs nothing to make
    with pytest.raises(RunFileError, match=f"over the {MAX_LINES_BYTES:,}-byte limit"):
        attempt.progress()
    (attempt.path / "progress.jsonl").write_text('{"epoch": 0, "epoch_seconds": 2}\n{"epoch": -1, "epoch_seconds": 1}\n')
    with pytest.raises(RunFileError, match="line 2: 'epoch' must be a whole number"):
        attempt.progress()
    checkpoint = attempt.path / "checkpoint_000001"
    checkpoint.mkdir()
    (checkpoint / "meta.json").write_text('{"sha256": "x"}')
    with pytest.raises(RunFileError, match="checkpoint_000001/meta.json: missing field 'epoch'"):
        list(attempt.checkpoints())
    (checkpoint / "meta.json").write_text('{"epoch": 1, "sha256": "not hex"}')
    with pytest.raises(RunFileError, match="'sha256' must be 64 lowercase hex digits"):
        list(attempt.checkpoints())
    (checkpoint / "meta.json").write_text("[1, 2]")
    with pytest.raises(RunFileError, match="not a JSON object"):
        list(attempt.checkpoints())


def test_a_checkpoint_that_is_or_holds_a_link_is_refused(attempt, tmp_path):
    (attempt.path / "checkpoint_manager_snapshot.json").write_text("{}")  # Ray Train's own: skipped
    assert list(attempt.checkpoints()) == []
    real = tmp_path / "real-checkpoint"
    real.mkdir()
    (attempt.path / "checkpoint_000002").symlink_to(real)
    with pytest.raises(RunFileError, match="checkpoint_000002: a checkpoint that is a link"):
        list(attempt.checkpoints())
    (real / "state.pt").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="is not a directory"):
        checkpoint_digest(attempt.path / "checkpoint_000002")
    with pytest.raises(OSError):
        checkpoint_digest(real)  # O_NOFOLLOW: the link to /dev/zero is never read


def test_writes_replace_a_planted_link_instead_of_following_it(attempt, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (attempt.path.parent / "provenance.json").symlink_to(victim)
    path = attempt.runs.job("job-1").write_provenance({"job": "job-1"})
    assert victim.read_text() == "precious" and not path.is_symlink() and '"job-1"' in path.read_text()
    attempt.append_progress({"epoch": 0, "epoch_seconds": 1.0})
    attempt.request_stop()
    assert attempt.stop_requested() and [line["epoch"] for line in attempt.progress()] == [0]
    assert AttemptDir.at(attempt.path).path == attempt.path
    with pytest.raises(RunFileError, match="job id"):
        RunsDir(tmp_path).job("../escape")
