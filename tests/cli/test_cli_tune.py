"""``avalanche-clip tune``: a validation split carved from the training data (the test split is
never read), the same trial budget for every strategy, resumable studies, tuned values applied by
``sweep --tuned`` and checked against their search spaces."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_fixtures import cli, read_jsonl, write_config
from PIL import Image

from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.tuned_values import apply_tuned
from avalanche_clip.scenarios import build_scenario

CLASSES = ("ant", "bee", "cat", "dog")


def write_image_folder(root: Path, train: int = 10, test: int = 3, size: int = 16) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``, one colour per class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((size, size, 3), 40.0)
                pixels[..., label % 3] += 60.0 * (1 + label // 3)
                pixels = np.clip(pixels + rng.normal(0, 20, pixels.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """A full root, and a copy of its train/ alone (no test split at all)."""
    full = write_image_folder(tmp_path_factory.mktemp("full"))
    train_only = tmp_path_factory.mktemp("trainonly")
    shutil.copytree(full / "train", train_only / "train")
    return full, train_only


def sweep_config(root: Path, cache: Path, **extra):
    config = {
        "scenario": "split-imagefolder", "label": "tiny", "data_root": str(root), "n_experiences": 2,
        "model": "tiny-clip", "pretrained": None, "trainable": "projections", "image_size": 32,
        "strategies": ["zero-shot", "ce", "gcl"], "mem_sizes": [4], "seeds": [0],
        "train_epochs": 1, "train_mb_size": 8, "eval_mb_size": 64, "cache_dir": str(cache),
        "progress": False, "tune": {"trials": 2, "validation_fraction": 0.3},
    }
    config.update(extra)
    return config


def test_the_validation_split_is_stratified_held_out_and_the_same_for_a_seed(roots):
    _, train_only = roots
    bench = build_scenario("split-imagefolder", root=train_only, n_experiences=2, seed=0,
                           validation_fraction=0.3)
    source = bench.source
    assert source.extra["split"] == "validation"
    validation = source.test.dataset.paths
    trains = source.train.dataset.paths
    assert not set(validation) & set(trains)  # disjoint from the samples that train
    assert len(validation) + len(trains) == 40
    per_class = np.bincount(source.test.targets, minlength=4)
    assert per_class.tolist() == [3, 3, 3, 3]  # round(0.3 × 10) of every class
    again = build_scenario("split-imagefolder", root=train_only, n_experiences=2, seed=0,
                           validation_fraction=0.3, max_test_per_class=1)
    assert set(again.source.test.dataset.paths) <= set(validation)  # same carve for the seed
    other = build_scenario("split-imagefolder", root=train_only, n_experiences=2, seed=1,
                           validation_fraction=0.3)
    assert set(other.source.test.dataset.paths) != set(validation)
    # test experience t holds the validation samples of train experience t's classes
    for train_exp, test_exp in zip(bench.train_stream, bench.test_stream, strict=True):
        assert set(train_exp.classes_in_this_experience) == set(test_exp.classes_in_this_experience)


def test_tune_without_a_test_folder_then_the_sweep_applies_its_values(roots, tmp_path, capsys):
    full, train_only = roots
    cache = tmp_path / "cache"
    config = write_config(tmp_path / "tune.yaml", sweep_config(train_only, cache))
    code, out, err = cli(capsys, "tune", "--config", config, "--out", tmp_path / "tuned")
    assert code == 0, err
    document = yaml.safe_load((tmp_path / "tuned" / "tuned.yaml").read_text())
    strategies = {label: entry["by_mem_size"][4] for label, entry in document["strategies"].items()}
    assert set(strategies) == {"ce", "gcl"}  # zero-shot never trains: nothing to tune
    assert {s["trials"] for s in strategies.values()} == {2}  # the same budget for each
    assert set(strategies["gcl"]["params"]) == {"lr", "tau", "gamma"}
    assert set(strategies["ce"]["params"]) == {"lr"}
    assert "gcl" in out and "validation accuracy" in out
    trial_config = yaml.safe_load(next((tmp_path / "tuned" / "trials" / "gcl").rglob("config.yaml")).read_text())
    assert trial_config["scenario_options"]["validation_fraction"] == 0.3

    sweep = write_config(tmp_path / "sweep.yaml", sweep_config(full, cache))
    code, _, err = cli(capsys, "sweep", "--config", sweep, "--out", tmp_path / "sweep",
                       "--tuned", tmp_path / "tuned" / "tuned.yaml")
    assert code == 0, err
    record = read_jsonl(tmp_path / "sweep" / "runs" / "tiny__gcl__m4__s0" / "results.jsonl")[-1]
    assert record["hyperparameters"]["lr"] == pytest.approx(strategies["gcl"]["params"]["lr"])
    assert record["hyperparameters"]["tau"] == pytest.approx(strategies["gcl"]["params"]["tau"])
    assert record["tuned_at_mem_size"] == record["hyperparameters"]["tuned_at_mem_size"] == 4


def test_values_outside_their_space_are_refused_when_read_back(roots, tmp_path):
    full, _ = roots
    config = sweep_config(full, tmp_path / "cache")
    tuned = tmp_path / "tuned.yaml"
    document = {"settings": {"mem_size": 4},
                "strategies": {"gcl": {"strategy": "gcl", "params": {"lr": 0.01, "tau": 50.0}}}}
    tuned.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"gcl.by_mem_size.4: tau=50.0 is outside its search space "
                                          r"\(float in \[0.002, 5\], log\)"):
        apply_tuned(config, tuned)
    document["strategies"]["gcl"]["params"] = {"temperature": 0.1}
    tuned.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="not in the search space"):
        apply_tuned(config, tuned)
    document["strategies"]["gcl"]["params"] = {"lr": 0.01}
    document["tuned_for"] = {"model": "effnet-lite0-clip"}
    tuned.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="tuned under another protocol"):
        apply_tuned(config, tuned)


def _complete_trials(db: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(
                "SELECT t.number, s.study_name FROM trials t JOIN studies s USING (study_id) "
                "WHERE t.state = 'COMPLETE' ORDER BY s.study_name, t.number").fetchall()
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return []


def _trial_states(db: Path) -> dict[int, str]:
    """trial number -> state, for a storage holding one study."""
    try:
        with sqlite3.connect(db) as connection:
            return dict(connection.execute("SELECT number, state FROM trials").fetchall())
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return {}


def test_a_killed_tune_resumes_without_repeating_finished_trials(roots, tmp_path, capsys, monkeypatch):
    _, train_only = roots
    config = write_config(tmp_path / "tune.yaml", sweep_config(
        train_only, tmp_path / "cache", strategies=["gcl"], tune={"trials": 4, "validation_fraction": 0.3}))
    out = tmp_path / "tuned"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "avalanche_clip", "tune", "--config", str(config),
                                "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            states = _trial_states(out / "optuna.db") if (out / "optuna.db").is_file() else {}
            if "COMPLETE" in states.values() and "RUNNING" in states.values():  # killed mid-trial
                break
            time.sleep(0.2)
        finished = _complete_trials(out / "optuna.db")
        assert finished and process.poll() is None, "the tune ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = _complete_trials(out / "optuna.db")
    killed = [n for n, state in _trial_states(out / "optuna.db").items() if state == "RUNNING"]
    stamps = {n: next((out / "trials" / "gcl" / "m4" / f"{n:04d}").rglob("results.jsonl")).stat().st_mtime_ns
              for n, _ in finished}

    import avalanche_clip.pipeline.tune as tuning
    import avalanche_clip.pipeline.tune_budget as tune_budget

    # the killed trial's heartbeat stays fresh (resumed at once, or a long grace period): it is
    # failed because its process is gone, not left RUNNING beside the budget's finished trials
    monkeypatch.setattr(tuning, "GRACE_S", 3600)
    # killed before it named its process (a moment after its creation), it is failed by its age:
    # at once here rather than after UNMARKED_S (tests/cli/test_tune_budget.py)
    monkeypatch.setattr(tune_budget, "UNMARKED_S", 0.0)
    code, _, err = cli(capsys, "tune", "--config", config, "--out", out)
    assert code == 0, err
    after = _complete_trials(out / "optuna.db")
    assert len(after) == 4 and set(finished) <= set(after)
    states = _trial_states(out / "optuna.db")
    assert killed and {states[n] for n in killed} == {"FAIL"} and "RUNNING" not in states.values()
    for number, stamp in stamps.items():  # finished trials were not run again
        trial = out / "trials" / "gcl" / "m4" / f"{number:04d}"
        assert next(trial.rglob("results.jsonl")).stat().st_mtime_ns == stamp
    assert yaml.safe_load((out / "tuned.yaml").read_text())["strategies"]["gcl"]["by_mem_size"][4]["trials"] == 4


def test_list_shows_every_search_space(capsys):
    code, out, _ = cli(capsys, "list", "--spaces")
    assert code == 0
    assert "search tau: float in [0.002, 5], log" in out
    assert "search gamma: float in [0.1, 1], 1 its limit" in out
    assert "search lr: float in [1e-07, 1], log" in out
    assert "search ewc_lambda: float in [0.001, 1e+08], log" in out
    assert "search: nothing (never trains)" in out


def test_variants_take_their_strategys_tuned_values_and_keep_their_own(roots, tmp_path):
    full, _ = roots
    config = sweep_config(full, tmp_path / "cache", strategies=[
        "gcl", {"label": "gcl-gamma1", "strategy": "gcl", "options": {"gamma": 1.0}}])
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(yaml.safe_dump({"settings": {"mem_size": 4}, "strategies": {
        "gcl": {"strategy": "gcl", "params": {"lr": 0.002, "tau": 0.1, "gamma": 0.5}}}}))
    applied = apply_tuned(config, tuned).strategies  # a SweepConfig: its entries as written
    assert applied[0]["options"] == {"lr": 0.002, "tau": 0.1, "gamma": 0.5}
    assert applied[1] == {"label": "gcl-gamma1", "strategy": "gcl",
                          "options": {"lr": 0.002, "tau": 0.1, "gamma": 1.0}}


def test_one_run_of_a_sweep_config_takes_the_values_its_sweep_would(roots, tmp_path):
    """``run --config SWEEP.yaml --tuned T strategy=...`` (what torchrun launches) is the run the
    sweep would make: tuned values, a variant's own options, the command line's last."""
    from avalanche_clip.cli import _config

    full, _ = roots
    config = write_config(tmp_path / "sweep.yaml", sweep_config(full, tmp_path / "cache", strategies=[
        "ce", "gcl", {"label": "gcl-gamma1", "strategy": "gcl", "options": {"gamma": 1.0}}]))
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(yaml.safe_dump({"settings": {"mem_size": 4}, "strategies": {
        "gcl": {"strategy": "gcl", "params": {"lr": 0.002, "tau": 0.1, "gamma": 0.5}}}}))

    run = _config(config, ["strategy=gcl-gamma1", "mem_size=4"], sweep=False, tuned=tuned)
    assert run["strategy"] == "gcl" and run["strategy_label"] == "gcl-gamma1" and run["mem_size"] == 4
    assert run["strategy_options"]["gcl"] == {"lr": 0.002, "tau": 0.1, "gamma": 1.0}
    assert run["tuned_at_mem_size"] == 4  # the file's one tuned size (settings.mem_size)
    given = _config(config, ["strategy=gcl", "strategy_options.gcl.tau=0.2"], sweep=False, tuned=tuned)
    assert given["strategy_options"]["gcl"] == {"lr": 0.002, "tau": 0.2, "gamma": 0.5}
    untuned = _config(config, ["strategy=ce"], sweep=False)
    assert untuned["strategy"] == "ce" and not untuned["strategy_options"]
    with pytest.raises(ValueError, match="'gdro' is not among the sweep config's strategies"):
        _config(config, ["strategy=gdro"], sweep=False, tuned=tuned)
    tuned.write_text(yaml.safe_dump({"settings": {"mem_size": 4},
                                     "strategies": {"gcl": {"strategy": "gcl", "params": {"tau": 50.0}}}}))
    with pytest.raises(ConfigError, match="tau"):  # out of its space, as a sweep refuses it
        _config(config, ["strategy=gcl"], sweep=False, tuned=tuned)
