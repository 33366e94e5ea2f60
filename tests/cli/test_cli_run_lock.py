"""One process at a time in a run folder: a second ``run`` (or a sweep's run) on a busy folder
stops with one line naming the holder, and a killed holder does not block the folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_fixtures import cli, read_jsonl, tiny_config, tiny_sweep_config, write_config

import avalanche_clip.pipeline.run  # noqa: F401  (imported now: the second run below reaches the lock at once)
from avalanche_clip.pipeline.run_lock import HOLDER_NAME, LOCK_NAME, run_folder_lock

REPO = Path(__file__).resolve().parents[2]


def _start_run(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "avalanche_clip", "run", "--config", str(config),
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_until_held(process: subprocess.Popen, out: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (out / HOLDER_NAME).is_file():
        assert process.poll() is None, "the first run ended before it held its folder"
        assert time.monotonic() < deadline, "the first run never held its folder"
        time.sleep(0.05)


def test_a_second_run_on_a_busy_folder_stops_naming_the_holder_and_a_killed_holder_frees_it(
        tmp_path, capsys):
    first = write_config(tmp_path / "a.yaml", tiny_config(tmp_path / "cache", lr=0.001, train_epochs=3))
    second = write_config(tmp_path / "b.yaml", tiny_config(tmp_path / "cache", lr=0.002, train_epochs=3))
    out = tmp_path / "out"
    holder = _start_run(first, out)
    try:
        _wait_until_held(holder, out)
        code, _, err = cli(capsys, "run", "--config", second, "--out", out)
        assert holder.poll() is None, "the first run ended before the second one tried the folder"
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)  # killed mid-run: the kernel drops its lock
        holder.wait()
    assert code == 2
    assert err.startswith(f"avalanche-clip run: error: {out} is in use by pid {holder.pid} on "
                          f"{socket.gethostname()} (since ")
    assert f"), which holds {out / LOCK_NAME}; wait for that run to end" in err and err.count("\n") == 1

    # the killed holder's lock does not outlive it: the run resumes in its folder
    code, _, err = cli(capsys, "run", "--config", first, "--out", out, "--resume")
    assert code == 0, err
    records = read_jsonl(out / "results.jsonl")
    assert records[-1]["final"] and {r["hyperparameters"]["lr"] for r in records} == {0.001}
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.001  # the records' config
    assert not (out / HOLDER_NAME).exists()


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: the runs are the sweep's worker processes
def test_a_sweep_run_whose_folder_is_busy_fails_with_the_line_and_the_others_finish(workers, tmp_path, capsys):
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", strategies=["gcl"], mem_sizes=[10], seeds=[0, 1]))
    out = tmp_path / "out"
    busy = out / "runs" / "digits__gcl__m10__s1"
    with run_folder_lock(busy):  # held by this process: the sweep's run (here or in a worker) is refused
        code, _, err = cli(capsys, "sweep", "--config", config, "--out", out, "--workers", workers,
                           "threads=1")
    assert code == 1, err
    failures = read_jsonl(out / "failures.jsonl")
    assert [f["run_id"] for f in failures] == ["digits__gcl__m10__s1"], failures
    assert failures[0]["error"].startswith(f"RunFolderBusyError: {busy} is in use by pid {os.getpid()} on ")
    assert read_jsonl(out / "runs" / "digits__gcl__m10__s0" / "results.jsonl")[-1]["final"]

    code, _, err = cli(capsys, "sweep", "--config", config, "--out", out, "threads=1")  # free again
    assert code == 0, err
    assert read_jsonl(busy / "results.jsonl")[-1]["final"]


def test_a_torchrun_job_on_a_busy_folder_stops_every_process_with_the_line(tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "avalanche_clip", "run", "--config", str(config), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with run_folder_lock(out):  # held by this process: rank 0 is refused, and says so to rank 1
        job = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode != 0
    line = f"avalanche-clip run: error: {out} is in use by pid {os.getpid()} on {socket.gethostname()}"
    assert job.stderr.count(line) == 2, job.stderr  # rank 0 and rank 1, each its one line
    assert "[rank1]: Traceback" not in job.stderr and "[rank0]: Traceback" not in job.stderr
    assert not out.exists()  # nothing was written (the folder was this holder's, made empty)
