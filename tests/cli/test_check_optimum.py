"""``avalanche-clip check-optimum``: each tuned learning rate re-scored on the tune's validation
split reproduces its study's best value exactly, its neighbours lr / f and lr · f are scored (or
skipped outside the space), and a neighbour better beyond one standard error exits with 1."""

from __future__ import annotations

import csv
import math
import warnings

import pytest
import torch
import yaml
from cli_fixtures import cli, read_jsonl, write_config
from test_cli_tune import sweep_config, write_image_folder

from avalanche_clip.cli import main
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.tune import validation_score
from avalanche_clip.pipeline.tune_optimum import (
    BEYOND_BETTER,
    NEIGHBOUR_BETTER,
    OPTIMUM,
    Beyond,
    Neighbour,
    OptimumCheck,
    _score_beyond,
    beyond_points,
    check_factor,
    select_studies,
)
from avalanche_clip.pipeline.tune_settings import tune_settings
from avalanche_clip.pipeline.tune_threads import refuse_reused_runs, tuned_threads
from avalanche_clip.strategies.spaces import COMMON_SPACE, describe, widen

VALIDATION = 12  # round(0.3 × 10) validation images of each of 4 classes


def _rows(folder):
    with open(folder / "optimum.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _final_accuracy(folder):
    """The final accuracy recorded by the one re-score run under ``folder`` (read from its records)."""
    (records,) = [read_jsonl(path) for path in folder.rglob("results.jsonl")]
    return records[-1]["stream_accuracy"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A one-trial tune of CE at memory 0 and 4 on the tiny image folder: (config, tuned.yaml)."""
    tmp = tmp_path_factory.mktemp("optimum")
    root = write_image_folder(tmp / "images")
    config = write_config(tmp / "tune.yaml", sweep_config(
        root, tmp / "cache", strategies=["zero-shot", "ce"], mem_sizes=[0, 4],
        tune={"trials": 1, "validation_fraction": 0.3}))
    with warnings.catch_warnings():  # a one-trial study's best may lie at a bound of its space
        warnings.simplefilter("ignore")
        assert main(["tune", "--config", str(config), "--out", str(tmp / "tuned")]) == 0
    return config, tmp / "tuned" / "tuned.yaml"


def test_the_tuned_lr_reproduces_its_study_and_its_neighbours_are_a_third_and_three_times(tuned, capsys):
    config, path = tuned
    studies = yaml.safe_load(path.read_text())["strategies"]["ce"]["by_mem_size"]
    folder = path.parent / "optimum"
    code, out, err = cli(capsys, "check-optimum", "--config", config, "--tuned", path, "--out", folder)
    rows = _rows(folder)
    assert [(row["strategy"], int(row["mem_size"])) for row in rows] == [("ce", 0), ("ce", 4)]
    better = False
    for row in rows:
        study = studies[int(row["mem_size"])]
        lr = study["params"]["lr"]
        assert float(row["lr"]) == lr and float(row["score"]) == study["value"]  # exactly the study's value
        assert float(row["lr_down"]) == lr / 3 and float(row["lr_up"]) == lr * 3
        p = study["value"]
        assert float(row["standard_error"]) == pytest.approx(math.sqrt(p * (1 - p) / VALIDATION))
        runs = folder / "runs" / "ce" / f"m{row['mem_size']}"
        scores = []
        for key, rate in (("score_down", lr / 3), ("score_up", lr * 3)):
            run = runs / f"lr{rate!r}"
            space = widen({"lr": COMMON_SPACE["lr"]}, study.get("widened"))["lr"]  # as its bound walk left it
            if not space["low"] <= rate <= space["high"]:  # outside the study's lr space: skipped, with a note
                assert row[key] == "" and not run.exists()
                assert f"= {rate:.4g} outside the space ({describe(space)}): skipped" in row["notes"]
                continue
            saved = yaml.safe_load(next(run.rglob("config.yaml")).read_text())
            assert saved["strategy_options"]["ce"]["lr"] == rate
            assert saved["threads"] == study["threads"] == torch.get_num_threads()  # the tune's count, recorded
            assert float(row[key]) == _final_accuracy(run)  # the table holds what the run recorded
            scores.append(float(row[key]))
        gain = max(scores) - p
        assert float(row["gain"]) == pytest.approx(gain)
        assert row["verdict"] == (NEIGHBOUR_BETTER if gain > float(row["standard_error"]) else OPTIMUM)
        better |= row["verdict"] == NEIGHBOUR_BETTER
    assert code == (1 if better else 0), err
    assert "| ce | 4 |" in out and (folder / "optimum.md").read_text().startswith("# Tuned values")

    # a finished table is not replaced silently; --force writes it again from the finished runs
    code, _, err = cli(capsys, "check-optimum", "--config", config, "--tuned", path, "--out", folder)
    assert code == 2 and "holds a finished optimum check; pass --force" in err
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "runs").rglob("results.jsonl")}
    code, _, err = cli(capsys, "check-optimum", "--config", config, "--tuned", path, "--out", folder, "--force",
                       "--strategies", "ce", "--mem-sizes", "4")
    assert code in (0, 1), err
    assert [int(row["mem_size"]) for row in _rows(folder)] == [4]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing re-trained


def test_a_bad_lr_has_a_better_neighbour_and_one_outside_the_space_is_skipped(tuned, tmp_path, capsys):
    config, path = tuned
    document = yaml.safe_load(path.read_text())
    study = document["strategies"]["ce"]["by_mem_size"][4]
    study["params"] = {"lr": 1e-7}  # far too small to move the projections in one epoch
    study["value"] = 0.5  # not what lr 1e-7 scores
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    code, _, err = cli(capsys, "check-optimum", "--config", config, "--tuned", bad, "--mem-sizes", "4",
                       "--out", tmp_path / "first", "--factor", "1e5")
    assert code == 2 and "re-scoring its tuned values {'lr': 1e-07} on validation gives 0.25" in err
    assert "but the study's best value is 0.5" in err  # both numbers named
    study["value"] = 0.25  # what a one-trial study at 1e-7 records: chance, as the untrained model (4 classes)
    bad.write_text(yaml.safe_dump(document))
    code, out, err = cli(capsys, "check-optimum", "--config", config, "--tuned", bad, "--mem-sizes", "4",
                         "--out", tmp_path / "check", "--factor", "1e5")
    assert code == 1, err
    (row,) = _rows(tmp_path / "check")
    assert row["score"] == "0.25" and row["score_down"] == ""  # 1e-12: below the space
    assert "lr / 100000 = 1e-12 outside the space (float in [1e-07, 1], log): skipped" in row["notes"]
    assert "lr=1e-07 at the low bound of its space" in row["notes"]
    up = float(row["score_up"])  # lr 0.01
    assert up == _final_accuracy(tmp_path / "check" / "runs" / "ce" / "m4" / f"lr{1e-7 * 1e5!r}")
    assert float(row["standard_error"]) == pytest.approx(0.125)  # sqrt(0.25 · 0.75 / 12)
    assert float(row["gain"]) == pytest.approx(up - 0.25) and up - 0.25 > 0.125
    assert row["verdict"] == NEIGHBOUR_BETTER and "**neighbour better**" in out
    assert "1 of 1 studies have a neighbouring learning rate or a value past a bound better" in out


def test_bad_input_is_refused_before_any_run(tuned, tmp_path, capsys):
    config, path = tuned
    cases = [
        (["--factor", "1"], "--factor must be a finite number > 1"),
        (["--strategies", "gcl"], "--strategies ['gcl'] were not tuned in this file; tuned: ['ce']"),
        (["--mem-sizes", "7"], "--mem-sizes [7]: no selected strategy was tuned there (tuned sizes: ce: [0, 4])"),
        (["tune.validation_fraction=0.2"], "validation_fraction: tuned with 0.3, the config gives 0.2"),
        (["tune.seeds=[1]"], "seeds: tuned with [0], the config gives [1]"),
    ]
    for extra, message in cases:
        code, _, err = cli(capsys, "check-optimum", "--config", config, "--tuned", path,
                           "--out", tmp_path / "refused", *extra)
        assert code == 2 and message in err, (extra, err)
    assert not (tmp_path / "refused" / "runs").exists()
    code, _, err = cli(capsys, "check-optimum", "--config", config)
    assert code == 2 and "pass --tuned FILE" in err
    naming = write_config(tmp_path / "naming.yaml", {**yaml.safe_load(config.read_text()), "tuned": str(path)})
    code, _, err = cli(capsys, "check-optimum", "--config", naming, "--mem-sizes", "7")
    assert code == 2 and "(tuned sizes: ce: [0, 4])" in err  # the config's tuned file was read


def test_a_study_tuned_with_another_thread_count_is_refused_before_any_run(tuned, tmp_path, capsys):
    config, path = tuned
    document = yaml.safe_load(path.read_text())
    here = torch.get_num_threads()
    assert tuned_threads(document) == here  # every study of this tune ran in this process
    document["strategies"]["ce"]["by_mem_size"][4]["threads"] = here + 1
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(document))
    assert tuned_threads(document) is None  # two counts: the command line applies none
    code, _, err = cli(capsys, "check-optimum", "--config", config, "--tuned", other, "--out", tmp_path / "check")
    assert code == 2 and f"study ce__m4 was tuned with {here + 1} torch threads and this check runs with {here}" in err
    assert f"pass threads={here + 1}" in err and not (tmp_path / "check" / "runs").exists()
    del document["strategies"]["ce"]["by_mem_size"][4]["threads"]  # an older file: nothing to compare
    assert tuned_threads(document) is None


def test_a_finished_rescore_run_of_another_thread_count_is_not_reused(tmp_path):
    folder = tmp_path / "lr0.01"
    refuse_reused_runs(folder, 1)  # nothing there yet
    (folder / "digits__s0").mkdir(parents=True)
    (folder / "digits__s0" / "config.yaml").write_text("strategy: ce\nthreads: 1\n")
    refuse_reused_runs(folder, 1)
    for saved, threads in (("1", 2), ("null", 1)):
        (folder / "digits__s0" / "config.yaml").write_text(f"strategy: ce\nthreads: {saved}\n")
        with pytest.raises(ConfigError, match=f"made with threads={'None' if saved == 'null' else saved}, "
                                              f"and this check runs with {threads}"):
            refuse_reused_runs(folder, threads)


def test_the_verdict_compares_the_best_gain_with_one_standard_error():
    def check(*values):
        neighbours = [Neighbour(1 / 3, 1e-3, values[0]), Neighbour(3, 9e-3, values[1])]
        return OptimumCheck("ce", "ce", 20, 3e-3, 0.5, 0.05, neighbours)

    assert check(0.5, 0.55).gain == pytest.approx(0.05) and check(0.5, 0.5).verdict == OPTIMUM
    assert check(0.25, 0.5).verdict == OPTIMUM and check(0.25, 0.5).gain == 0.0
    assert check(0.5625, None).verdict == NEIGHBOUR_BETTER  # 0.0625 > 0.05
    assert check(None, None).gain is None and check(None, None).verdict == OPTIMUM
    with pytest.raises(ConfigError, match=r"--factor must be a finite number > 1 .*got 0.5"):
        check_factor(0.5)
    assert check_factor(3) == 3.0


def test_studies_are_selected_by_label_and_tuned_size():
    studies = {"ce": {0: {}, 20: {}}, "der": {20: {}, 200: {}}, "ewc": {0: {}}}
    assert select_studies(studies, None, None) == [("ce", 0), ("ce", 20), ("der", 20), ("der", 200), ("ewc", 0)]
    assert select_studies(studies, ["der", "ewc"], [20]) == [("der", 20)]
    assert select_studies(studies, None, [0]) == [("ce", 0), ("ewc", 0)]
    with pytest.raises(ConfigError, match=r"--mem-sizes \[0\]: no selected strategy was tuned there "
                                          r"\(tuned sizes: der: \[20, 200\]\)"):
        select_studies(studies, ["der"], [0, 20])


def test_a_value_at_a_bound_is_rescored_past_it(tuned, tmp_path, capsys):
    config, path = tuned
    document = yaml.safe_load(path.read_text())
    sweep = {**yaml.safe_load(config.read_text()), "strategies": ["zero-shot", "ce", "gcl"]}
    config = write_config(tmp_path / "gcl.yaml", sweep)
    params = {"lr": 3e-3, "tau": 0.0021, "gamma": 0.5}  # tau within 5 % of the bottom of [0.002, 5], log
    value = validation_score(sweep, tune_settings(sweep), "gcl", params, 4, tmp_path / "scored").value
    document["strategies"] = {"gcl": {"strategy": "gcl", "by_mem_size": {4: {"params": params, "value": value}}}}
    tuned_file = tmp_path / "tuned.yaml"
    tuned_file.write_text(yaml.safe_dump(document))
    code, out, err = cli(capsys, "check-optimum", "--config", config, "--tuned", tuned_file, "--out", tmp_path / "check")
    (row,) = _rows(tmp_path / "check")
    past = 0.002 / 3  # the bound divided by the factor
    run = tmp_path / "check" / "runs" / "gcl" / "m4" / f"tau{past!r}"
    assert yaml.safe_load(next(run.rglob("config.yaml")).read_text())["strategy_options"]["gcl"]["tau"] == past
    score = _final_accuracy(run)
    assert row["beyond_bound"] == f"tau={past:.4g}: {score!r}"
    assert float(row["beyond_gain"]) == pytest.approx(score - value)
    assert "tau=0.0021 at the low bound of its space" in row["notes"]
    gain = max(float(row["score_down"]), float(row["score_up"])) - value
    expected = (NEIGHBOUR_BETTER if gain > float(row["standard_error"])
                else BEYOND_BETTER if score - value > float(row["standard_error"]) else OPTIMUM)
    assert row["verdict"] == expected and code == (0 if expected == OPTIMUM else 1), err
    assert "1 of them have a value at a bound of its space, re-scored past it" in out


def test_points_past_a_bound_and_a_refused_point():
    log = {"type": "float", "low": 0.01, "high": 10.0, "log": True}
    assert beyond_points("low", log, 3.0) == [0.01 / 3] and beyond_points("high", log, 3.0) == [30.0]
    linear = {"type": "float", "low": 0.0, "high": 0.999}
    assert beyond_points("high", linear, 3.0) == pytest.approx([1.0989, 1.04895])
    assert beyond_points("low", linear, 3.0) == pytest.approx([-0.0999, -0.04995])

    def refuse(name, value):
        raise ValueError(f"{name} must lie in [0, 1), got {value}")

    refused = _score_beyond("beta1", "high", linear, 3.0, refuse)
    assert refused.value is None and refused.score is None
    assert refused.note.startswith("beta1=1.099 refused (beta1 must lie in [0, 1)")
    assert refused.note.endswith(": the bound is the parameter's limit")
    tried = []
    second = _score_beyond("beta1", "low", linear, 3.0,
                           lambda name, value: tried.append(value) or (refuse(name, value) if value < -0.06 else 0.4))
    assert second.score == 0.4 and second.value == pytest.approx(-0.04995) and len(tried) == 2


def test_a_value_past_a_bound_better_beyond_one_standard_error_fails_the_check():
    neighbours = [Neighbour(1 / 3, 1e-3, 0.5), Neighbour(3, 9e-3, 0.5)]
    check = OptimumCheck("gcl", "gcl", 20, 3e-3, 0.5, 0.05, neighbours, [], [Beyond("tau", "low", 6e-4, 0.56)])
    assert check.beyond_gain == pytest.approx(0.06) and check.verdict == BEYOND_BETTER
    level = OptimumCheck("gcl", "gcl", 20, 3e-3, 0.5, 0.05, neighbours, [], [Beyond("tau", "low", 6e-4, 0.54)])
    assert level.verdict == OPTIMUM
    refused = OptimumCheck("gcl", "gcl", 20, 3e-3, 0.5, 0.05, neighbours, [], [Beyond("tau", "low", None, None)])
    assert refused.beyond_gain is None and refused.verdict == OPTIMUM
