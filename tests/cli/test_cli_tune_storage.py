"""``avalanche-clip tune`` on a shared or damaged storage: two tunes on one ``--out`` finish exactly
the trial budget together, and a damaged ``optuna.db`` is one line saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from cli_fixtures import cli, write_config
from test_cli_tune import _trial_states, roots, sweep_config  # noqa: F401  (roots: the fixture)

REPO = Path(__file__).resolve().parents[2]


def test_two_tunes_on_one_out_complete_exactly_the_budget(roots, tmp_path, capsys):  # noqa: F811
    _, train_only = roots
    config = write_config(tmp_path / "tune.yaml", sweep_config(
        train_only, tmp_path / "cache", strategies=["gcl"], tune={"trials": 3, "validation_fraction": 0.3}))
    out = tmp_path / "tuned"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    other = subprocess.Popen([sys.executable, "-m", "avalanche_clip", "tune", "--config", str(config),
                              "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while "RUNNING" not in (_trial_states(out / "optuna.db") if (out / "optuna.db").is_file() else {}).values():
        assert other.poll() is None, "the first tune ended before its first trial ran"
        assert time.monotonic() < deadline, "the first tune never started a trial"
        time.sleep(0.1)

    code, _, err = cli(capsys, "tune", "--config", config, "--out", out)  # while the other one runs
    _, other_err = other.communicate(timeout=240)
    assert code == 0, err
    assert other.returncode == 0, other_err
    states = list(_trial_states(out / "optuna.db").values())
    assert states.count("COMPLETE") == 3 and "RUNNING" not in states
    assert yaml.safe_load((out / "tuned.yaml").read_text())["strategies"]["gcl"]["by_mem_size"][4]["trials"] == 3


def _valid_study(path: Path) -> None:
    """An Optuna database holding a finished study, as a tune leaves it."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="gcl", storage=f"sqlite:///{path}", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-5, 0.1, log=True), n_trials=3)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_optuna_db_is_one_line_naming_the_file(damage, roots, tmp_path, capsys):  # noqa: F811
    _, train_only = roots
    config = write_config(tmp_path / "tune.yaml", sweep_config(train_only, tmp_path / "cache", strategies=["gcl"]))
    out = tmp_path / "tuned"
    out.mkdir()
    database = out / "optuna.db"
    if damage == "truncated":  # a copy cut short (a full disk, an interrupted transfer)
        _valid_study(tmp_path / "whole.db")
        data = (tmp_path / "whole.db").read_bytes()
        database.write_bytes(data[: len(data) // 2])
    else:
        database.write_bytes(b"not a database\n" * 200)
    before = database.read_bytes()

    code, out_text, err = cli(capsys, "tune", "--config", config, "--out", out)
    assert code == 2 and out_text == ""
    assert err.startswith(f"avalanche-clip tune: error: the tune's study storage {database} is not a "
                          "readable SQLite database (")
    assert f"move it aside (mv {database} {database}.damaged)" in err and err.count("\n") == 1
    assert database.read_bytes() == before  # nothing written over it
    assert not (out / "trials").exists()  # nothing was trained
