"""Avalanche's example scripts, rewritten for a CLIP classifier and GCL / GDRO / CE on benchmarks
from Avalanche's own builders (``examples/``), run end to end on tiny data."""

from __future__ import annotations

import csv
import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
TINY = ["--max-per-class", "8", "--batch-size", "16", "--epochs", "1"]


def example(name: str):
    return importlib.import_module(name)


def test_getting_started(capsys):
    results = example("getting_started").main(TINY)
    assert len(results) == 5
    final = results[-1]
    accuracy = final["Top1_Acc_Stream/eval_phase/test_stream/Task000"]  # nc_benchmark: task 0
    assert 0.0 <= accuracy <= 1.0 and math.isfinite(final["Loss_Stream/eval_phase/test_stream/Task000"])
    assert "Start of experience 4" in capsys.readouterr().out


def test_evaluation_plugin_writes_every_logger(tmp_path, capsys):
    results = example("evaluation_plugin").main([*TINY, "--log-dir", str(tmp_path)])
    assert len(results) == 5 and "ConfusionMatrix_Stream/eval_phase/test_stream" in results[-1]
    assert "Top1_Acc_Stream/eval_phase/test_stream" in (tmp_path / "log.txt").read_text()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    with open(tmp_path / "csv" / "eval_results.csv") as stream:
        rows = list(csv.DictReader(stream))
    first = [r for r in rows if r["training_exp"] == "0"]
    assert len(first) == 5  # the whole test stream after the first experience
    assert math.isfinite(float(first[0]["eval_loss"]))
    assert all(math.isnan(float(r["eval_loss"])) for r in first[1:])  # no seen class: not 0


def test_lr_scheduling(capsys):
    out = example("lr_scheduling").main([*TINY[:-1], "4"])
    assert out["milestones"] == [2, 3]
    assert out["learning_rates"] == [1e-3] * 5  # the plugin resets the rate after each experience
    assert 0.0 <= out["metrics"]["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0


@pytest.mark.filterwarnings("ignore:Metric Top1_Acc_Stream used by the EarlyStopping plugin is not computed yet")
def test_early_stopping(capsys):
    out = example("early_stopping").main([*TINY[:-1], "6"])
    assert len(out["epochs"]) == 5 and all(1 <= e <= 6 for e in out["epochs"])
    assert any(e < 6 for e in out["epochs"])  # stopped before the last epoch somewhere


@pytest.mark.parametrize("plugin, strategy", [("ewc", "gdro"), ("lwf", "gcl"), ("si", "ce")])
def test_ewc_lwf_si(plugin, strategy, capsys):
    out = example("ewc_lwf").main([*TINY, "--plugin", plugin, "--strategy", strategy])
    state = out["plugin"]
    if plugin == "ewc":
        assert sorted(state.importances) == [0, 1, 2, 3, 4]
    elif plugin == "lwf":
        assert state.lwf.prev_model is not None and state.lwf.expcount == 5
    else:
        assert any(float(p.data.abs().sum()) > 0 for p in state.ewc_data[1].values())


def test_checkpointing_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    module = example("checkpointing")
    whole = module.main([*TINY, "--checkpoint", str(tmp_path / "whole.pt")])
    first = module.main([*TINY, "--checkpoint", str(tmp_path / "cut.pt"), "--stop-after", "1"])
    assert first["start"] == 0 and sorted(first["results"]) == [0, 1]
    second = module.main([*TINY, "--checkpoint", str(tmp_path / "cut.pt")])
    assert second["start"] == 2 and "resumed after experience 1" in capsys.readouterr().out
    assert second["results"][4] == whole["results"][4]
    for (key, a), (_, b) in zip(whole["strategy"].model.state_dict().items(),
                                second["strategy"].model.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=key)
