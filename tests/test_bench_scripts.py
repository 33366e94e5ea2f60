"""The benchmark scripts run, on CPU with tiny settings: the GPU step benchmark is ready for a
machine with a device, and the whole-run benchmark reports its ratio."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    if str(BENCHMARKS) not in sys.path:  # as `python benchmarks/<script>.py` has it: their shared module
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_benchmark_times_every_strategy_against_naive(tmp_path):
    out = tmp_path / "step.json"
    medians = _script("bench_step").main([
        "--model", "tiny-clip", "--image-size", "32", "--trainable", "projections", "--batch", "8",
        "--rounds", "1", "--max-per-class", "4", "--warmup", "1", "--json", str(out)])
    assert set(medians) == {"naive+ce", "ce", "gcl", "gdro"}
    assert all(m > 0 for m in medians.values())
    saved = json.loads(out.read_text())
    assert saved["ratio_to_naive"]["naive+ce"] == 1.0 and saved["args"]["amp"] == "fp32"


def test_run_benchmark_compares_a_continual_run_with_joint_training_of_the_same_steps(tmp_path):
    result = _script("bench_run").main([
        "--repeats", "1", "--work", str(tmp_path), "--set", "model=tiny-clip", "pretrained=null",
        "image_size=32", "scenario_options.max_train_per_class=4",
        "scenario_options.max_test_per_class=2"])
    assert result["steps"]["continual"] == result["steps"]["joint"] > 0
    assert result["ratio"] == result["continual_s"] / result["joint_s"] > 0


def test_sweep_timer_times_every_run_of_a_fresh_sweep_and_refuses_a_used_folder(tmp_path):
    import pytest
    import yaml

    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "scenario": "digits", "n_experiences": 2, "model": "tiny-clip", "pretrained": None,
        "image_size": 32, "trainable": "projections", "train_epochs": 1, "train_mb_size": 16,
        "scenario_options": {"max_train_per_class": 4, "max_test_per_class": 2},
        "strategies": ["gcl", "joint"], "mem_sizes": [0], "seeds": [0], "cache_dir": str(tmp_path / "cache")}))
    out = tmp_path / "sweep"
    result = _script("time_sweep").main(["--config", str(config), "--out", str(out), "--json",
                                         str(tmp_path / "t.json")])
    assert result["runs"] == 2 and result["total_s"] > result["setup_s"] > 0
    assert len(list((out / "runs").iterdir())) == 2
    assert json.loads((tmp_path / "t.json").read_text())["runs"] == 2
    with pytest.raises(SystemExit):
        _script("time_sweep").main(["--config", str(config), "--out", str(out)])


def test_optimizer_benchmark_times_the_three_paths_and_checks_they_equal_the_loop():
    results = _script("bench_optimizer").main(["--steps", "2", "--rounds", "1"])
    assert set(results) == {"default", "default, dead features", "proxy"}
    for paths in results.values():
        assert set(paths) == {"per-tensor", "foreach", "fused"}
        assert paths["per-tensor"]["ratio"] == 1.0 and paths["per-tensor"]["equal"]
        assert paths["foreach"]["equal"]  # the path the shared optimizer takes: records unchanged
        assert all(p["ms"] > 0 for p in paths.values())


def test_finite_guard_benchmark_times_the_plugin_against_the_full_walk():
    medians = _script("bench_finite_guard").main(["--calls", "2", "--rounds", "1", "--model", "tiny-clip",
                                                  "--pretrained", "none"])
    assert set(medians) == {"walk every parameter (before)", "FiniteGuardPlugin (now)"}
    assert all(ms > 0 for ms in medians.values())


def test_make_optimizer_benchmark_times_ours_against_avalanches_update():
    medians = _script("bench_make_optimizer").main(["--calls", "2", "--rounds", "1", "--model", "tiny-clip",
                                                    "--pretrained", "none"])
    assert set(medians) == {"Avalanche's update_optimizer (before)", "update_optimizer_params (now)"}
    assert all(ms > 0 for ms in medians.values())


def test_ewc_penalty_benchmark_times_ours_against_avalanches_and_finds_them_equal():
    result = _script("bench_ewc_penalty").main(["--calls", "2", "--rounds", "1", "--model", "tiny-clip",
                                                "--pretrained", "none"])
    assert result.pop("equal") == 1.0
    assert set(result) == {"Avalanche's before_backward (before)", "TrainableEWCPlugin (now)"}
    assert all(ms > 0 for ms in result.values())
