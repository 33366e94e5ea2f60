"""Tuning per memory size: which sizes a tune studies, values applied from the nearest tuned size
and recorded as ``tuned_at_mem_size``, older one-size files, best values at a bound of their space,
the validation size and standard error of a study, and a sampler seed per (study, config)."""

from __future__ import annotations

import math
import warnings

import pytest
import yaml
from cli_fixtures import cli, read_jsonl, write_config
from test_cli_tune import sweep_config, write_image_folder

from avalanche_clip.pipeline.config import ConfigError, resolve_config
from avalanche_clip.pipeline.sweep import plan_sweep
from avalanche_clip.pipeline.tune import study_mem_sizes, study_seed, trial_runs, tune_settings
from avalanche_clip.pipeline.tune_quality import standard_error, validation_size, values_at_bound
from avalanche_clip.pipeline.tuned_values import apply_tuned, load_tuned, nearest_size, read_tuned
from avalanche_clip.strategies.spaces import COMMON_SPACE, check_spec, describe, near_bound, widen

LOG_LR = {"type": "float", "low": 1e-7, "high": 1e-1, "log": True}


def test_near_bound_measures_log_spaces_on_log_scale_and_int_spaces_linearly():
    # position on [1e-7, 1e-1], log: (log10 v + 7) / 6
    assert near_bound(1.2e-5, LOG_LR) is None  # log10(120) / 6 = 0.35
    assert near_bound(1.5e-7, LOG_LR) == "low"  # log10(1.5) / 6 = 0.029
    assert near_bound(0.05, LOG_LR) is None  # (7 - 1.301) / 6 = 0.9498
    assert near_bound(0.06, LOG_LR) == "high"  # (7 - 1.222) / 6 = 0.963
    # CE's committed 1.2e-5 on the old space [1e-5, 1e-1]: log10(1.2) / 4 = 0.0198, at the low bound
    assert near_bound(1.2e-5, {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}) == "low"
    linear = {"type": "float", "low": 0.1, "high": 0.7}
    assert near_bound(0.12, linear) == "low" and near_bound(0.14, linear) is None  # 0.033, 0.067
    assert near_bound(0.68, linear) == "high" and near_bound(0.66, linear) is None  # 0.967, 0.933
    steps = {"type": "int", "low": 1, "high": 10}
    assert [near_bound(v, steps) for v in (1, 2, 9, 10)] == ["low", None, None, "high"]
    assert near_bound("class", {"type": "categorical", "choices": ["instance", "class"]}) is None
    with pytest.raises(ValueError, match="not on the log space"):
        near_bound(0.0, LOG_LR)


def test_a_bound_that_is_the_parameters_own_limit_is_not_reported():
    rate = {"type": "float", "low": 0.1, "high": 1.0, "limit": ["high"]}  # a moving-average weight
    assert near_bound(0.999, rate) is None and near_bound(0.11, rate) == "low"
    assert near_bound(0.999, {**rate, "limit": []}) == "high"
    assert describe(rate) == "float in [0.1, 1], 1 its limit"
    with pytest.raises(ValueError, match=r"limit must list 'low' and/or 'high', got \['top'\]"):
        check_spec("gamma", {**rate, "limit": ["top"]})


def test_learning_rates_reach_down_to_1e_7_and_bound_values_are_listed():
    assert COMMON_SPACE["lr"]["low"] == 1e-7
    space = {"lr": LOG_LR, "tau": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}
    found = values_at_bound({"lr": 1e-3, "tau": 0.49}, space)
    assert found == [{"param": "tau", "value": 0.49, "bound": "high", "space": "float in [0.01, 0.5], log"}]
    assert values_at_bound({"lr": 1e-3}, space) == []


def test_standard_error_of_a_mean_of_accuracies():
    assert standard_error(0.5, [100]) == pytest.approx(0.05)  # sqrt(0.25 / 100)
    assert standard_error(0.5, [100, 100]) == pytest.approx(math.sqrt(2 * 0.0025) / 2)  # 0.0354
    assert standard_error(0.9, [400, 100]) == pytest.approx(math.sqrt(0.09 / 400 + 0.09 / 100) / 2)
    assert standard_error(1.0, [10]) == 0.0
    with pytest.raises(ValueError, match="sizes must be a non-empty list"):
        standard_error(0.5, [])
    with pytest.raises(ValueError, match=r"accuracy must lie in \[0, 1\], got 1.5"):
        standard_error(1.5, [10])


def _sweep(**extra):
    return resolve_config([{"strategies": ["zero-shot", "ce", "ewc", "der", "gcl"], "mem_sizes": [0, 20, 50, 200],
                            "seeds": [0], **extra}], sweep=True)


def test_tune_sizes_default_to_the_grid_the_older_key_is_one_size_and_memoryless_methods_once():
    settings = tune_settings(_sweep())
    assert settings.mem_sizes == [0, 20, 50, 200] and settings.validation_fraction == 0.2
    assert tune_settings(_sweep(tune={"mem_size": 50})).mem_sizes == [50]
    assert tune_settings(_sweep(tune={"mem_sizes": [200, 0, 20]})).mem_sizes == [0, 20, 200]
    assert tune_settings(_sweep(tune={"validation_fraction": 0.1})).validation_fraction == 0.1
    with pytest.raises(ConfigError, match=r"tune.mem_size \(50\) and tune.mem_sizes \(\[0\]\) are both set"):
        tune_settings(_sweep(tune={"mem_size": 50, "mem_sizes": [0]}))
    with pytest.raises(ConfigError, match=r"tune.mem_sizes must be a non-empty list of distinct integers >= 0, "
                                          r"got \[20, 20\]"):
        tune_settings(_sweep(tune={"mem_sizes": [20, 20]}))
    with pytest.raises(ConfigError, match=r"tune.mem_sizes .* got -1"):
        tune_settings(_sweep(tune={"mem_sizes": -1}))
    sizes = [0, 20, 200]
    assert study_mem_sizes("ewc", sizes) == [0]  # its runs ignore the memory: tuned once
    assert study_mem_sizes("der", sizes) == [20, 200]  # needs a memory
    assert study_mem_sizes("ce", sizes) == sizes and study_mem_sizes("gcl", sizes) == sizes
    with pytest.raises(ConfigError, match=r"'der' needs a replay memory but tune.mem_sizes \[0\]"):
        study_mem_sizes("der", [0])
    settings = tune_settings(_sweep(tune={"mem_sizes": [0, 20]}))
    assert [run.mem_size for run in trial_runs(_sweep(), settings, "ewc", {"lr": 1e-3}, 0)] == [0]
    assert [run.options["lr"] for run in trial_runs(_sweep(), settings, "gcl", {"lr": 1e-3}, 20)] == [1e-3]


def test_the_sampler_seed_comes_from_the_study_and_the_config():
    config = _sweep()
    settings = tune_settings(config)
    seed = study_seed(config, settings, "gcl__m20")
    assert seed == study_seed(_sweep(), tune_settings(_sweep()), "gcl__m20")  # same config, same seed
    assert seed != study_seed(config, settings, "gcl__m50")
    assert seed != study_seed(config, settings, "ce__m20")
    other = _sweep(weight_decay=0.05)  # one value differs
    assert seed != study_seed(other, tune_settings(other), "gcl__m20")
    reseeded = _sweep(tune={"sampler_seed": 1})
    assert seed != study_seed(reseeded, tune_settings(reseeded), "gcl__m20")
    elsewhere = _sweep(cache_dir="/elsewhere", device="cuda")  # where it runs: the same draws
    assert seed == study_seed(elsewhere, tune_settings(elsewhere), "gcl__m20")
    # more sweep seeds (the tune's own seeds unchanged) and a wider memory grid (the tuned sizes
    # unchanged) make more runs, not other trials
    grown = _sweep(seeds=[0, 1, 2, 3, 4], mem_sizes=[0, 20, 50, 500], tune={"seeds": [0], "mem_sizes": [0, 20, 50]})
    same = _sweep(tune={"seeds": [0], "mem_sizes": [0, 20, 50]})
    assert study_seed(grown, tune_settings(grown), "gcl__m20") == study_seed(same, tune_settings(same), "gcl__m20")
    # a widened space is a new search (the same quantiles of it would be drawn otherwise)
    space = {"lr": {"type": "float", "low": 1e-7, "high": 1.0, "log": True}}
    wider = {"lr": {"type": "float", "low": 1e-8, "high": 1.0, "log": True}}
    assert study_seed(config, settings, "gcl__m20", space) == study_seed(_sweep(), tune_settings(_sweep()), "gcl__m20", space)
    assert len({seed, study_seed(config, settings, "gcl__m20", space),
                study_seed(config, settings, "gcl__m20", wider)}) == 3


def test_the_nearest_tuned_size_and_ties_go_to_the_smaller():
    sizes = [0, 20, 200]
    assert [nearest_size(sizes, m) for m in (0, 10, 11, 50, 110, 111, 500)] == [0, 0, 20, 20, 20, 200, 200]


def _per_memory_file(path):
    study = {"value": 0.5, "trials": 2, "wall_time_s": 1.0}
    path.write_text(yaml.safe_dump({"settings": {"mem_sizes": [0, 20, 200]}, "strategies": {
        "gcl": {"strategy": "gcl", "by_mem_size": {0: {"params": {"lr": 1e-3}, **study},
                                                    20: {"params": {"lr": 2e-3}, **study},
                                                    200: {"params": {"lr": 3e-3}, **study}}},
        "ewc": {"strategy": "ewc", "by_mem_size": {0: {"params": {"lr": 4e-4}, **study}}},
    }}))
    return path


def test_a_sweep_applies_the_values_of_the_nearest_tuned_size_and_records_it(tmp_path):
    config = _sweep(strategies=["zero-shot", "ewc", "gcl", {"label": "gcl-g1", "strategy": "gcl",
                                                            "options": {"gamma": 1.0}}])
    tuned = load_tuned(config, _per_memory_file(tmp_path / "tuned.yaml"))
    assert tuned.per_memory
    runs = {run.run_id: run for run in plan_sweep(config, tuned).runs}
    expected = {0: (1e-3, 0), 20: (2e-3, 20), 50: (2e-3, 20), 200: (3e-3, 200)}
    for mem_size, (lr, tuned_at) in expected.items():
        run = runs[f"digits__gcl__m{mem_size}__s0"]
        assert run.options == {"lr": lr} and run.tuned_at_mem_size == tuned_at
        assert run.hyperparameters["tuned_at_mem_size"] == tuned_at
        variant = runs[f"digits__gcl-g1__m{mem_size}__s0"]
        assert variant.options == {"lr": lr, "gamma": 1.0} and variant.tuned_at_mem_size == tuned_at
    assert runs["digits__ewc__m0__s0"].options == {"lr": 4e-4} and runs["digits__ewc__m0__s0"].tuned_at_mem_size == 0
    assert runs["digits__zero-shot__m0__s0"].tuned_at_mem_size is None  # never trains: not tuned
    assert "tuned_at_mem_size" not in runs["digits__zero-shot__m0__s0"].hyperparameters
    with pytest.raises(ConfigError, match="holds values per memory size"):
        apply_tuned(config, tmp_path / "tuned.yaml")


def test_an_older_flat_file_reads_as_tuned_at_its_settings_mem_size(tmp_path):
    # the layout tune wrote before per-memory tuning (the earlier proxies' tuned.yaml, at memory 50)
    older = tmp_path / "older.yaml"
    older.write_text(yaml.safe_dump({
        "settings": {"mem_size": 50, "sampler_seed": 0, "seeds": [0], "strategies": ["gcl"], "trials": 16,
                     "tune_epochs": False, "validation_fraction": 0.1},
        "strategies": {"gcl": {"params": {"gamma": 0.56, "lr": 1.4e-4, "tau": 0.35},
                               "space": {"lr": {"high": 0.1, "log": True, "low": 1e-05, "type": "float"}},
                               "strategy": "gcl", "trials": 16, "value": 0.5, "wall_time_s": 100.0}}}))
    document = read_tuned(older)
    assert set(document["strategies"]["gcl"]["by_mem_size"]) == {50}
    assert document["strategies"]["gcl"]["by_mem_size"][50]["params"]["lr"] == 1.4e-4
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump({"strategies": {"gcl": {"strategy": "gcl", "params": {"lr": 1e-3}}}}))
    with pytest.raises(ConfigError, match=r"gcl has flat 'params' but settings.mem_size is None; expected"):
        read_tuned(flat)
    flat.write_text(yaml.safe_dump({"settings": {"mem_size": 50},
                                    "strategies": {"gcl": {"strategy": "gcl", "params": {"lr": 1e-3}}}}))
    config = _sweep()
    runs = {run.run_id: run for run in plan_sweep(config, load_tuned(config, flat)).runs}
    assert {runs[f"digits__gcl__m{m}__s0"].tuned_at_mem_size for m in (0, 20, 50, 200)} == {50}
    assert apply_tuned(config, flat).strategies[-1] == {"label": "gcl", "strategy": "gcl", "options": {"lr": 1e-3}}


def test_the_validation_size_counts_the_carved_samples(tmp_path):
    root = write_image_folder(tmp_path / "images")  # 4 classes × 10 training images
    config = resolve_config([sweep_config(root, tmp_path / "cache", strategies=["ce"])], sweep=True)
    settings = tune_settings(config)  # validation_fraction 0.3 in sweep_config
    runs = trial_runs(config, settings, "ce", {}, 4)
    assert [validation_size(run) for run in runs] == [12]  # round(0.3 × 10) of each of 4 classes


def test_tune_per_memory_then_a_sweep_records_the_tuned_size(tmp_path, capsys):
    root = write_image_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    base = sweep_config(root, cache, strategies=["zero-shot", "ce"], mem_sizes=[0, 4, 8],
                        tune={"trials": 1, "validation_fraction": 0.3, "mem_sizes": [0, 8]})
    config = write_config(tmp_path / "tune.yaml", base)
    with warnings.catch_warnings(record=True) as caught:  # a one-trial study's best may lie at a bound
        warnings.simplefilter("always")
        code, out, err = cli(capsys, "tune", "--config", config, "--out", tmp_path / "tuned")
    assert code == 0, err
    document = yaml.safe_load((tmp_path / "tuned" / "tuned.yaml").read_text())
    assert document["settings"]["mem_sizes"] == [0, 8]
    ce = document["strategies"]["ce"]
    assert ce["memory"] == "optional" and set(ce["by_mem_size"]) == {0, 8}
    assert {study["trials"] for study in ce["by_mem_size"].values()} == {1}  # the same budget for each
    for size, study in ce["by_mem_size"].items():
        assert study["validation_sizes"] == [12]
        p = study["value"]
        assert study["standard_error"] == pytest.approx(math.sqrt(p * (1 - p) / 12))
        assert f"m={size}" in out
        lr, spec = study["params"]["lr"], widen({"lr": COMMON_SPACE["lr"]}, study["widened"])["lr"]
        position = (math.log(lr) - math.log(spec["low"])) / (math.log(spec["high"]) - math.log(spec["low"]))
        at_bound = position < 0.05 or position > 0.95  # of the study's space, as its bound walk left it
        assert bool(study["at_bound"]) == at_bound
        assert any(f"study ce__m{size}: best lr=" in str(w.message) for w in caught) == at_bound
        if study["bound_walks"]:  # it stays at a bound only where its walk ran out of moves
            assert at_bound == (study["bound_walks"][0]["stopped"] == "move limit")
    assert ce["by_mem_size"][0]["sampler_seed"] != ce["by_mem_size"][8]["sampler_seed"]

    sweep = write_config(tmp_path / "sweep.yaml", {**base, "tuned": str(tmp_path / "tuned" / "tuned.yaml")})
    code, _, err = cli(capsys, "sweep", "--config", sweep, "--out", tmp_path / "sweep")
    assert code == 0, err
    for mem_size, tuned_at in ((0, 0), (4, 0), (8, 8)):  # 4: as near 0 as 8, the smaller
        records = read_jsonl(tmp_path / "sweep" / "runs" / f"tiny__ce__m{mem_size}__s0" / "results.jsonl")
        assert {r["tuned_at_mem_size"] for r in records} == {tuned_at}
        assert records[-1]["hyperparameters"]["lr"] == pytest.approx(ce["by_mem_size"][tuned_at]["params"]["lr"])
    zero_shot = read_jsonl(tmp_path / "sweep" / "runs" / "tiny__zero-shot__m0__s0" / "results.jsonl")
    assert "tuned_at_mem_size" not in zero_shot[-1]
