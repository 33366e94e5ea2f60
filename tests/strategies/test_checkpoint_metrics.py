"""Checkpoints keep the evaluator's metric state: an interrupted and resumed run reports the same
forgetting (per experience and over the stream) as the uninterrupted run, for GDRO and for
Avalanche's own Naive."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from torch import nn

from avalanche_clip.strategies import GDROStrategy
from avalanche_clip.training.checkpoint import load_checkpoint, save_checkpoint
from avalanche_clip.training.plugins import SeenClassesPlugin

N_EXPERIENCES = 3


def _evaluator():
    return EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                            forgetting_metrics(experience=True, stream=True))


def _naive():
    model = tiny_classifier(digits(8)[2])
    return Naive(model=model, optimizer=optimizer(model, lr=1e-2), criterion=nn.CrossEntropyLoss(),
                 train_mb_size=8, plugins=[SeenClassesPlugin(model.num_classes)], evaluator=_evaluator())


def _gdro():
    model = tiny_classifier(digits(8)[2])
    return GDROStrategy(model=model, optimizer=optimizer(model, lr=1e-2), mem_size=0, train_mb_size=8, train_epochs=2,
                        seed=0, evaluator=_evaluator())


def _run(build, benchmark, path, *, stop_after=None, resume=False):
    """The user's loop: train, evaluate the experiences seen so far, checkpoint; returns the
    last evaluation's forgetting metrics."""
    strategy = build()
    start = load_checkpoint(path, strategy=strategy, train_stream=benchmark.train_stream) + 1 if resume else 0
    metrics = {}
    for t in range(start, N_EXPERIENCES):
        strategy.train(benchmark.train_stream[t])
        metrics = strategy.eval(benchmark.test_stream[: t + 1])
        save_checkpoint(path, strategy=strategy, experience=t)
        if t == stop_after:
            break
    return {k: v for k, v in metrics.items() if "Forgetting" in k}


@pytest.mark.parametrize("build", [_naive, _gdro], ids=["naive", "gdro"])
def test_a_resumed_run_reports_the_forgetting_of_the_uninterrupted_one(tmp_path, build):
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    reference = _run(build, benchmark, tmp_path / "reference.pt")
    _run(build, benchmark, tmp_path / "resumed.pt", stop_after=0)
    torch.manual_seed(1234)  # a new process; the checkpoint restores the RNGs
    resumed = _run(build, benchmark, tmp_path / "resumed.pt", resume=True)

    stream = "StreamForgetting/eval_phase/test_stream"
    assert reference[stream] != 0.0  # training forgets: the comparison can tell
    experiences = sorted(k for k in reference if k.startswith("ExperienceForgetting"))
    assert len(experiences) == N_EXPERIENCES - 1  # every experience before the last
    assert resumed == pytest.approx(reference, rel=0, abs=1e-12)
