"""``avalanche-clip sweep``: the memory rules of the grid, the report, re-runs that retrain nothing,
strategies skipped on scenario kinds they do not support, and ``--workers`` (worker processes
here, or Ray) giving the records of the serial sweep."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest
from cli_fixtures import (
    RECORD_KEYS,
    cli,
    forbid_training,
    main,
    read_jsonl,
    sweep_records,
    tiny_sweep_config,
    without_time,
    write_config,
    write_domain_tree,
)

# strategies [zero-shot, naive, der, gcl] x mem_sizes [0, 10] x seeds [0, 1]: memory-free methods
# run at 0 only, der (memory required) at 10 only, gcl (ours, memory optional) at both.
EXPECTED_RUNS = sorted(
    f"digits__{strategy}__m{mem}__s{seed}"
    for seed in (0, 1)
    for strategy, mems in (("zero-shot", [0]), ("naive", [0]), ("der", [10]), ("gcl", [0, 10]))
    for mem in mems
)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished tiny sweep: (config file, sweep folder, exit code, stdout)."""
    root = tmp_path_factory.mktemp("sweep")
    config = write_config(root / "sweep.yaml", tiny_sweep_config(root / "cache"))
    out = root / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["sweep", "--config", str(config), "--out", str(out)])
    return config, out, code, stdout.getvalue()


def test_sweep_plans_runs_by_each_methods_memory_use(swept):
    _, out, code, stdout = swept
    assert code == 0
    runs = sweep_records(out)
    assert sorted(runs) == EXPECTED_RUNS
    for run_id, records in runs.items():
        _, strategy, mem, seed = run_id.split("__")
        assert [r["experience"] for r in records] == [0, 1]
        assert records[-1]["final"]
        for record in records:
            assert not set(RECORD_KEYS) - set(record), run_id
            assert (record["strategy"], f"m{record['mem_size']}", f"s{record['seed']}") == (strategy, mem, seed)
        assert not (out / "runs" / run_id / "checkpoint.pt").exists()
    assert f"{len(EXPECTED_RUNS)} runs in {out}" in stdout
    assert not (out / "failures.jsonl").exists()


def test_runs_of_one_seed_share_the_zero_shot_floor(swept):
    _, out, _, _ = swept
    floors = {}
    for records in sweep_records(out).values():
        for record in records:
            floors.setdefault(record["seed"], set()).add(record["zero_shot_accuracy"])
    assert set(floors) == {0, 1}
    assert all(len(values) == 1 for values in floors.values()), floors


def test_sweep_writes_the_report_and_prints_the_table(swept):
    _, out, _, stdout = swept
    report = out / "report"
    for name in ("summary.md", "summary.csv", "report.md"):
        assert (report / name).is_file(), name
    figures = sorted(p.name for p in (report / "figures").iterdir())
    assert "final_vs_memory__digits.png" in figures and "final_vs_memory__digits.svg" in figures
    assert any(name.startswith("accuracy_per_experience__digits") for name in figures)

    table = [line for line in stdout.splitlines() if line.startswith("| digits")]
    rows = {tuple(cell.strip() for cell in line.strip("|").split("|")[1:3]) for line in table}
    assert rows == {("zero-shot", "0"), ("naive", "0"), ("der", "10"), ("gcl", "0"), ("gcl", "10")}
    assert (report / "summary.md").read_text().strip() in stdout
    csv = (report / "summary.csv").read_text().splitlines()
    assert len(csv) == 1 + len(rows)
    assert (out / "sweep.yaml").is_file()


def test_second_sweep_retrains_nothing_and_leaves_every_record_untouched(swept, capsys, monkeypatch):
    config, out, _, first_stdout = swept
    results = sorted((out / "runs").glob("*/results.jsonl"))
    before = {p: p.read_bytes() for p in results}
    summary = (out / "report" / "summary.md").read_bytes()
    forbid_training(monkeypatch)

    code, stdout, stderr = cli(capsys, "sweep", "--config", config, "--out", out)

    assert code == 0, stderr
    assert sorted((out / "runs").glob("*/results.jsonl")) == results
    assert {p: p.read_bytes() for p in results} == before
    assert (out / "report" / "summary.md").read_bytes() == summary  # same records, same report
    assert stdout == first_stdout


def test_strategies_that_do_not_support_the_scenario_kind_are_reported_as_skipped(tmp_path, capsys):
    root = write_domain_tree(tmp_path / "domains", per_class=3)
    config = write_config(tmp_path / "dil.yaml", tiny_sweep_config(
        tmp_path / "cache", scenario="domain-folder", data_root=str(root), n_experiences=None,
        scenario_options={}, strategies=["icarl", "zero-shot"], mem_sizes=[10], seeds=[0]))

    code, stdout, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "out")

    assert code == 0, stderr
    assert "skipped: icarl on domain-folder: supports class-incremental only" in stdout
    assert sorted(sweep_records(tmp_path / "out")) == ["domain-folder__zero-shot__m0__s0"]
    records = read_jsonl(tmp_path / "out" / "runs" / "domain-folder__zero-shot__m0__s0" / "results.jsonl")
    assert [r["experience"] for r in records] == [0, 1]  # one experience per domain
    assert "1 runs in" in stdout


def test_rerunning_a_sweep_with_a_changed_config_is_refused(swept, capsys, monkeypatch):
    config, out, _, _ = swept
    forbid_training(monkeypatch)
    before = {run: read_jsonl(out / "runs" / run / "results.jsonl") for run in EXPECTED_RUNS}
    code, _, err = cli(capsys, "sweep", "--config", config, "--out", out, "lr=0.5")
    assert code == 2
    assert "holds a run with another config" in err and "lr:" in err
    assert {run: read_jsonl(out / "runs" / run / "results.jsonl") for run in EXPECTED_RUNS} == before


def test_hyperparameter_errors_name_the_strategy(swept, capsys, monkeypatch):
    config, out, _, _ = swept
    forbid_training(monkeypatch)
    code, _, err = cli(capsys, "sweep", "--config", config, "--out", out, "strategy_options.gcl.gamma=1.5")
    assert code == 2 and "strategy 'gcl': gamma must be in (0.0, 1.0], got 1.5" in err


def test_a_parallel_sweep_gives_the_records_of_the_serial_sweep(swept, capsys, tmp_path, monkeypatch):
    config, serial, _, serial_stdout = swept
    out = tmp_path / "parallel"

    # threads=1 as in the serial sweep (the suite runs torch on one thread): bit-equal records need
    # the same reduction order, which the thread count can change on a machine with more cores
    code, stdout, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "--workers", "2", "threads=1")

    assert code == 0, stderr
    runs = sweep_records(out)
    assert sorted(runs) == EXPECTED_RUNS
    expected = sweep_records(serial)
    for run_id, records in runs.items():
        assert without_time(records) == without_time(expected[run_id]), run_id
    assert (out / "report" / "summary.md").read_text() == (serial / "report" / "summary.md").read_text()
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert table and table == [line for line in serial_stdout.splitlines() if line.startswith("|")]
    assert not (out / "failures.jsonl").exists()

    # re-run: nothing left to run, so no worker pool, nothing retrained, every record untouched
    import avalanche_clip.pipeline.sweep as sweep

    before = {p: p.read_bytes() for p in out.glob("runs/*/results.jsonl")}
    forbid_training(monkeypatch)
    monkeypatch.setattr(sweep, "run_parallel", lambda *a, **k: pytest.fail("workers started with nothing to run"))
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "--workers", "2")
    assert code == 0, stderr
    assert {p: p.read_bytes() for p in out.glob("runs/*/results.jsonl")} == before
    # and a changed config is refused before anything starts, as in a serial sweep
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "--workers", "2", "lr=0.5")
    assert code == 2 and "holds a run with another config" in stderr


def test_a_sweep_on_a_ray_instance_gives_the_records_of_the_serial_sweep(swept, capsys, tmp_path):
    pytest.importorskip("ray", reason="Ray (the 'cluster' extra) is not installed")
    config, serial, _, _ = swept
    out = tmp_path / "ray"
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "--workers", "2",
                          "--ray-address", "local", "threads=1", "seeds=[1]")
    assert code == 0, stderr
    runs = sweep_records(out)
    assert sorted(runs) == [run for run in EXPECTED_RUNS if run.endswith("s1")]
    expected = sweep_records(serial)
    for run_id, records in runs.items():
        assert without_time(records) == without_time(expected[run_id]), run_id


def test_workers_auto_is_the_default_and_gives_the_serial_records(swept, capsys, tmp_path, monkeypatch):
    from avalanche_clip.common.threads import local_cores

    config, serial, _, _ = swept
    monkeypatch.delenv("AVALANCHE_CLIP_SWEEP_WORKERS")
    out = tmp_path / "auto"
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "seeds=[1]")  # no --workers
    assert code == 0, stderr
    runs, expected = sweep_records(out), sweep_records(serial)
    assert sorted(runs) == [run for run in EXPECTED_RUNS if run.endswith("s1")]
    for run_id, records in runs.items():  # one thread a run, as the serial sweep of this suite
        assert without_time(records) == without_time(expected[run_id]), run_id
    assert (out / "worker-logs").is_dir() == (local_cores() > 1)  # its runs went to workers


def test_bad_workers_are_named(swept, capsys, tmp_path, monkeypatch):
    config, _, _, _ = swept
    for bad in ("0", "two"):
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "bad", "--workers", bad)
        assert code == 2 and "--workers must be" in stderr and bad in stderr and "'auto'" in stderr
    monkeypatch.setenv("AVALANCHE_CLIP_SWEEP_WORKERS", "-3")
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "bad")
    assert code == 2 and "AVALANCHE_CLIP_SWEEP_WORKERS must be >= 1 or 'auto', got -3" in stderr
    assert not (tmp_path / "bad").exists()


def test_ray_address_without_ray_names_the_extra_to_install(swept, capsys, tmp_path, monkeypatch):
    config, _, _, _ = swept
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "out", "--ray-address", "local")
    assert code == 2 and "--ray-address needs --workers N" in stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "out", "--workers", "2",
                          "--ray-address", "local")
    assert code == 2
    assert "pip install 'avalanche-clip[cluster]'" in stderr and "leave out --ray-address" in stderr
    assert not (tmp_path / "out").exists()
    # a sweep on this machine's workers needs no Ray
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "pool", "--workers", "2",
                          "strategies=[zero-shot]", "seeds=[0,1]", "threads=1")
    assert code == 0, stderr
    # a serial sweep never imports Ray
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "serial",
                          "strategies=[zero-shot]", "seeds=[0]")
    assert code == 0, stderr
