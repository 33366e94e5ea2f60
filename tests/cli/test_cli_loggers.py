"""Avalanche's loggers from the command line (issue 23, part 9): ``loggers=[csv,tensorboard]``
writes their files under the run folder, a resumed run keeps what the first part logged, and a
bad logger name is one line naming the known ones."""

from __future__ import annotations

import csv
import importlib.util
import sys

import pytest
from cli_fixtures import cli, interrupted_run, read_jsonl, tiny_config, write_config

from avalanche_clip.cli import _parse


def _eval_rows(folder):
    with (folder / "eval_results.csv").open() as stream:
        return list(csv.DictReader(stream))


def test_a_run_writes_the_csv_tensorboard_and_offline_wandb_logs_under_its_folder(
        tmp_path, capsys, monkeypatch):
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):  # W&B not configured: it runs offline
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from a wandb login
    wandb = importlib.util.find_spec("wandb") is not None  # one run checks every logger
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    out = tmp_path / "out"
    loggers = "[csv,tensorboard,wandb]" if wandb else "[csv,tensorboard]"
    code, _, err = cli(capsys, "run", "--config", config, "--out", out, f"loggers={loggers}")
    assert code == 0, err
    records = read_jsonl(out / "results.jsonl")
    assert len(records) == 2 and records[-1]["final"]

    rows = _eval_rows(out / "logs" / "csv")  # one row per (training experience, test experience)
    assert {(row["training_exp"], row["eval_exp"]) for row in rows} >= {("0", "0"), ("1", "0"), ("1", "1")}
    last = [row for row in rows if row["training_exp"] == "1" and row["eval_exp"] == "1"]
    assert float(last[-1]["eval_accuracy"]) == pytest.approx(records[-1]["accuracy_per_experience"][1])
    assert (out / "logs" / "csv" / "training_results.csv").stat().st_size > 0

    events = list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 100  # header + scalars, flushed on close
    if wandb:
        runs = list((out / "logs" / "wandb" / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_a_resumed_run_logs_beside_the_interrupted_part_instead_of_over_it(tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache", loggers=["csv"]))
    out = interrupted_run(tmp_path / "out", config)
    first = _eval_rows(out / "logs" / "csv")
    assert {row["training_exp"] for row in first} == {"0"}
    code, _, err = cli(capsys, "run", "--config", config, "--out", out, "--resume")
    assert code == 0, err
    assert _eval_rows(out / "logs" / "csv") == first  # not truncated by the resumed part
    assert {row["training_exp"] for row in _eval_rows(out / "logs" / "csv-2")} == {"1"}


@pytest.mark.parametrize(("value", "message"), [
    ("[csv,mlflow]", "unknown logger(s) 'mlflow' in loggers; known loggers: tensorboard, csv, wandb"),
    ("csv", "loggers must be a list of logger names (tensorboard, csv, wandb), got 'csv'"),
    ("[csv,csv]", "loggers lists 'csv' more than once"),
])
def test_a_bad_logger_is_one_line_naming_the_known_ones(tmp_path, capsys, value, message):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    code, _, err = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", f"loggers={value}")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_wandb_without_the_package_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what Python sees where it is not installed
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache"))
    code, _, err = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", "loggers=[wandb]")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "wandb needs the wandb package, which is not installed: pip install wandb" in err


def test_run_help_lists_the_loggers_key(capsys):
    with pytest.raises(SystemExit):
        _parse(["run", "--help"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["loggers"]]
    assert len(lines) == 1 and "tensorboard, csv, wandb" in lines[0]
