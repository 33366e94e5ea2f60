"""Records do not depend on the process, the order of a sweep, or the CPU model (issue 28).

- every registered strategy gives identical records in two separate processes, the second with
  another hash seed and the sweep's strategies in reverse order (so no state leaks from one run
  of a sweep process into the next);
- command-line processes pin oneDNN, MKL and ATen to their AVX2 paths before computing, so a CPU
  with AVX-512 computes what an AVX2-only CPU does (Co2L's committed records moved with it);
- a sample of the committed default runs re-runs to identical records at this commit
  (``experiments/rerun_committed.py``), so a change that moves results cannot land with stale tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avalanche_clip.common.cpu_kernels import (
    PINNED_CPU_KERNELS,
    compute_identity,
    cpu_has_avx2,
    pin_cpu_kernels,
)
from avalanche_clip.pipeline.run_loop import read_records
from avalanche_clip.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
X86_AVX2 = cpu_has_avx2()
needs_avx2 = pytest.mark.skipif(not X86_AVX2, reason="pinning applies to x86-64 CPUs with AVX2 only")


def _python(args: list[str], *, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Run ``python args`` from the repository root with a clean kernel environment; its stdout."""
    base = {k: v for k, v in os.environ.items() if k not in PINNED_CPU_KERNELS}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@needs_avx2
def test_pinning_sets_the_avx2_paths_and_keeps_what_the_user_set():
    assert pin_cpu_kernels({}) == PINNED_CPU_KERNELS
    environ = {"ONEDNN_MAX_CPU_ISA": "ALL"}
    pinned = pin_cpu_kernels(environ)
    assert "ONEDNN_MAX_CPU_ISA" not in pinned and environ["ONEDNN_MAX_CPU_ISA"] == "ALL"
    assert environ["MKL_CBWR"] == "AVX2" and environ["ATEN_CPU_CAPABILITY"] == "avx2"


@needs_avx2
def test_a_command_line_process_computes_on_the_pinned_paths():
    probe = ("import contextlib, io, torch; from avalanche_clip.cli import main\n"
             "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
             "    main(['--help'])\n"
             "print('capability', torch.backends.cpu.get_cpu_capability())")
    assert "capability AVX2" in _python(["-c", probe])
    # a user's own setting wins
    assert "capability DEFAULT" in _python(["-c", probe], env={"ATEN_CPU_CAPABILITY": "default"})


def test_the_compute_path_is_part_of_what_features_are_keyed_by(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    pinned = compute_identity("cpu")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert compute_identity("cpu") != pinned  # native oneDNN is another path
    assert compute_identity("cuda") == {"device": "cuda"}


def _sweep_config(path: Path, strategies: list[str], cache: Path) -> Path:
    config = {
        "scenario": "digits", "n_experiences": 2,
        "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 6},
        "model": "tiny-clip", "pretrained": None, "trainable": "projections",
        "strategies": strategies, "mem_sizes": [0, 10], "seeds": [3],
        "train_epochs": 1, "train_mb_size": 16, "eval_mb_size": 64, "threads": 1,
        "cache_dir": str(cache), "progress": False,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _records(out: Path) -> dict[str, list[dict]]:
    """run id -> its records without wall time, for every run folder of a sweep."""
    return {folder.name: [{k: v for k, v in r.items() if k != "wall_time_s"}
                          for r in read_records(folder / "results.jsonl")]
            for folder in sorted((out / "runs").iterdir())}


def test_every_strategy_gives_identical_records_in_two_processes_in_either_order(tmp_path):
    names = sorted(STRATEGIES.list())
    first, second = tmp_path / "first", tmp_path / "second"
    _python(["-m", "avalanche_clip", "sweep", "--config",
             str(_sweep_config(tmp_path / "a.yaml", names, tmp_path / "cache")), "--out", str(first)],
            env={"PYTHONHASHSEED": "1"})
    _python(["-m", "avalanche_clip", "sweep", "--config",
             str(_sweep_config(tmp_path / "b.yaml", names[::-1], tmp_path / "cache")), "--out", str(second)],
            env={"PYTHONHASHSEED": "2"})
    a, b = _records(first), _records(second)
    assert {r[0]["strategy"] for r in a.values()} == set(names)  # every method ran
    assert a.keys() == b.keys()
    for run_id in a:
        assert a[run_id] == b[run_id], run_id


@pytest.mark.skipif(not X86_AVX2, reason="committed records were made with kernels pinned to AVX2")
def test_a_sample_of_the_committed_default_reruns_to_identical_records(tmp_path):
    # Co2L is the method whose records moved with the CPU (issue 28); DER and GCL beside it.
    out = _python(["experiments/rerun_committed.py", "--runs", "digits__co2l__m200__s1",
                   "digits__der__m20__s2", "digits__gcl__m50__s0"],
                  env={"AVALANCHE_CLIP_CACHE": str(tmp_path / "cache")})
    assert out.splitlines()[-1] == "every re-run record is identical", out


def test_against_compares_a_finished_sweep_with_the_committed_records_except_wall_time(tmp_path):
    import json
    import shutil

    committed = Path(__file__).resolve().parents[1] / "experiments" / "results" / "default" / "runs"
    names = ["digits__gcl__m20__s0", "digits__ce__m0__s1"]
    results, fresh = tmp_path / "committed", tmp_path / "fresh"
    for name in names:
        for folder in (results, fresh):
            shutil.copytree(committed / name, folder / "runs" / name)

    def rewrite(name: str, field: str, change) -> None:
        path = fresh / "runs" / name / "results.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows[-1][field] = change(rows[-1][field])
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def against() -> tuple[int, str]:
        done = subprocess.run([sys.executable, "experiments/rerun_committed.py", str(results), "--against", str(fresh)],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout

    rewrite(names[0], "wall_time_s", lambda t: t + 100.0)  # the one field allowed to differ
    assert against() == (0, "all 2 runs' records are identical\n")
    rewrite(names[1], "stream_accuracy", lambda a: a + 1e-9)
    code, out = against()
    assert code == 1 and f"DIFFERENT committed/{names[1]}" in out and "stream_accuracy" in out
    shutil.rmtree(fresh / "runs" / names[0])
    code, out = against()
    assert code == 1 and f"MISSING   {names[0]}" in out and "2 of 2 runs differ or are missing" in out
