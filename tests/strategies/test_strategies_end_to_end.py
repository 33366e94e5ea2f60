"""Every registered strategy runs end to end on tiny-clip, class- and domain-incremental."""

from __future__ import annotations

import io
import re

import pytest
from avalanche.logging import TextLogger
from strategy_fixtures import cil_benchmark, dil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import STRATEGIES, build_strategy, strategy_hparams, strategy_info


def _run(name, benchmark, mem_size):
    log = io.StringIO()
    setup = make_setup(benchmark, mem_size=mem_size, loggers=[TextLogger(log)])
    strategy = build_strategy(name, setup)
    records = ContinualRun(strategy, benchmark, identity={"strategy": name}, progress=False,
                           joint=strategy_info(name).joint).run()
    return records, log.getvalue()


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_class_incremental(name):
    info = strategy_info(name)
    benchmark = cil_benchmark(with_index=info.uses_index)
    records, log = _run(name, benchmark, mem_size=20)
    expected = 1 if info.joint else 5
    assert [r["experience"] for r in records] == list(range(5 - expected, 5))
    final = records[-1]
    assert final["final"] and len(final["accuracy_per_experience"]) == 5
    assert 0.0 <= final["stream_accuracy"] <= 1.0
    # the stream accuracy is the sample-weighted mean of the per-experience accuracies
    # (every test experience here has the same size)
    assert final["stream_accuracy"] == pytest.approx(sum(final["accuracy_per_experience"]) / 5, abs=1e-6)
    assert "Top1_Acc_Stream/eval_phase/test_stream" in log  # Avalanche's logger saw the metrics
    if not info.joint:
        assert "StreamForgetting" in log
        assert records[0]["forgetting"] is None and records[1]["forgetting"] is not None


@pytest.mark.parametrize("name", [n for n in STRATEGIES.list() if "domain-incremental" in strategy_info(n).scenarios])
def test_domain_incremental(name, dil_root):
    info = strategy_info(name)
    benchmark = dil_benchmark(dil_root, with_index=info.uses_index)
    records, _ = _run(name, benchmark, mem_size=6)
    final = records[-1]
    assert final["final"] and len(final["accuracy_per_experience"]) == 2  # both domains evaluated
    assert 0.0 <= final["stream_accuracy"] <= 1.0


def test_icarl_refuses_domain_incremental_streams(dil_root):
    benchmark = dil_benchmark(dil_root, with_index=False)
    with pytest.raises(ValueError, match="icarl.*supports class-incremental scenarios, not domain-incremental"):
        build_strategy("icarl", make_setup(benchmark, mem_size=6))


def test_memory_requirements_and_unknown_hyperparameters_fail_fast():
    benchmark = cil_benchmark()
    with pytest.raises(ValueError, match="'der' needs a replay memory: mem_size must be >= 1, got 0"):
        build_strategy("der", make_setup(benchmark, mem_size=0))
    tau = re.escape(repr(strategy_hparams("gcl")["tau"]))  # GCL's own default, named in the accepted list
    with pytest.raises(ValueError, match=rf"unknown hyper-parameter\(s\) 'temperature' for strategy 'gcl'.*tau={tau}"):
        build_strategy("gcl", make_setup(benchmark), temperature=0.1)
    with pytest.raises(ValueError, match="mem_size must be an integer >= 0, got -1"):
        make_setup(benchmark, mem_size=-1)
    with pytest.raises(ValueError, match="unknown strategy 'gdr0'.*Did you mean 'gdro'"):
        build_strategy("gdr0", make_setup(benchmark))
