"""Issue 6's done-when: a sweep killed mid-run (SIGKILL, no clean-up) and then re-run gives the
same records as a sweep that was never interrupted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_fixtures import main, sweep_records, tiny_sweep_config, without_time, write_config

import avalanche_clip.pipeline.run_loop as runner

REPO = Path(__file__).resolve().parents[2]
POLL_S = 0.02
TIMEOUT_S = 180


def _partial_runs(out: Path) -> list[str]:
    """Run ids with at least one record but no final one, and a checkpoint to resume from."""
    partial = []
    for path in sorted(out.glob("runs/*/results.jsonl")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines and not json.loads(lines[-1])["final"] and (path.parent / "checkpoint.pt").is_file():
            partial.append(path.parent.name)
    return partial


def _kill_mid_run(process: subprocess.Popen, out: Path) -> list[str]:
    """SIGKILL ``process`` while some run in ``out`` is unfinished (see ``_partial_runs``);
    returns the runs it left unfinished.

    The process is stopped (SIGSTOP) first and the folder looked at again, so a run that
    finished between the look and the signal does not count as killed mid-run."""
    deadline = time.monotonic() + TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        if _partial_runs(out):
            os.kill(process.pid, signal.SIGSTOP)
            partial = _partial_runs(out)
            if partial:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return partial
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(POLL_S)
    if process.poll() is None:
        process.kill()
        process.wait()
        pytest.fail(f"no run of the sweep had a record and a checkpoint within {TIMEOUT_S} s")
    pytest.fail(
        f"the sweep exited (code {process.returncode}) before it could be killed mid-run; make its "
        "runs longer (more samples or epochs) so the kill lands inside one"
    )


def _sweep(config: Path, out: Path) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["sweep", "--config", str(config), "--out", str(out)])


def _loaded_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The experience of every checkpoint runs load from now on."""
    loaded: list[int] = []
    original = runner.load_checkpoint
    monkeypatch.setattr(runner, "load_checkpoint",
                        lambda *a, **k: loaded.append(original(*a, **k)) or loaded[-1])
    return loaded


def test_killed_sweep_resumes_to_the_records_of_an_uninterrupted_one(tmp_path, monkeypatch):
    # gcl first: it is killed while training its second experience, after the checkpoint of the
    # first, and resumes from it; then der (not checkpointable), which the killed process never
    # started. gcl's second experience takes ~0.4 s here (on one thread), many 20 ms polls; a
    # higher learning rate than the default makes the records depend visibly on the training.
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", strategies=["gcl", "der"], mem_sizes=[20], seeds=[0],
        scenario_options={"max_train_per_class": 100, "max_test_per_class": 30},
        train_epochs=4, lr=0.01))
    killed = tmp_path / "killed"
    with (tmp_path / "stdout.txt").open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "avalanche_clip", "sweep", "--config", str(config), "--out", str(killed)],
            cwd=REPO, stdout=stdout, stderr=stderr,
            env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},  # as in-process
        )
        try:
            unfinished = _kill_mid_run(process, killed)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGKILL
    assert unfinished == ["digits__gcl__m20__s0"]  # killed inside gcl's second experience
    assert not (killed / "runs" / "digits__der__m20__s0").exists()
    assert not (killed / "report").exists()  # the sweep never got to its end

    loaded = _loaded_checkpoints(monkeypatch)
    assert _sweep(config, killed) == 0  # resumes: continues the killed run, then runs the rest
    assert loaded == [0]  # from the checkpoint of the killed run's first experience
    reference = tmp_path / "reference"
    assert _sweep(config, reference) == 0
    assert loaded == [0]  # the uninterrupted sweep loads no checkpoint

    resumed_records, reference_records = sweep_records(killed), sweep_records(reference)
    assert sorted(reference_records) == ["digits__der__m20__s0", "digits__gcl__m20__s0"]
    assert sorted(resumed_records) == sorted(reference_records)
    for run_id, records in reference_records.items():
        assert records[-1]["final"] and len(records) == 2
        assert without_time(resumed_records[run_id]) == without_time(records), run_id
    assert not list(killed.glob("runs/*/checkpoint.pt"))
    assert (killed / "report" / "summary.md").read_text() == (reference / "report" / "summary.md").read_text()


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (children, theirs, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while being read
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc (Linux)")
def test_a_killed_parallel_sweep_leaves_no_worker_behind_and_resumes(tmp_path):
    # two workers, each training a gcl run of a seed; the sweep's process is SIGKILLed with both in
    # flight, so nothing of it can end the workers: they must end themselves, and the re-run
    # sweep finishes the runs with the records of a sweep that was never interrupted
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", strategies=["gcl"], mem_sizes=[20], seeds=[0, 1],
        scenario_options={"max_train_per_class": 100, "max_test_per_class": 30},
        train_epochs=4, lr=0.01))
    killed = tmp_path / "killed"
    with (tmp_path / "stdout.txt").open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "avalanche_clip", "sweep", "--config", str(config), "--out", str(killed),
             "--workers", "2", "threads=1"], cwd=REPO, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while process.poll() is None and not _partial_runs(killed) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            workers = _descendants(process.pid)  # the forkserver and the workers it forked
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert len(workers) >= 3  # the forkserver and the two workers (and the resource tracker)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the sweep that was killed"

    assert _sweep(config, killed) == 0
    reference = tmp_path / "reference"
    assert _sweep(config, reference) == 0
    resumed_records, reference_records = sweep_records(killed), sweep_records(reference)
    assert sorted(reference_records) == ["digits__gcl__m20__s0", "digits__gcl__m20__s1"]
    for run_id, records in reference_records.items():
        assert without_time(resumed_records[run_id]) == without_time(records), run_id
