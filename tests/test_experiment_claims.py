"""experiments/claims.py: the READMEs' results tables are what the committed records give, and the
verdict rules say what its docstring says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from avalanche_clip.reporting.welch import Difference

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "claims.py"


@pytest.fixture(scope="module")
def claims():
    spec = importlib.util.spec_from_file_location("experiment_claims", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_readmes_match_the_committed_records(claims, capsys):
    assert claims.main(["--check"]) == 0, capsys.readouterr().out


def _comparison(claims, low: float, high: float):
    return claims.Comparison(
        "x at 0", claims.FINAL, Difference((low + high) / 2, low, high, 4.0, 0.01, 0.01)
    )


def test_verdict_rules(claims):
    ahead, noise, behind = (
        _comparison(claims, *bounds) for bounds in ((0.01, 0.03), (-0.01, 0.02), (-0.03, -0.01))
    )
    assert claims.verdict([ahead, ahead]) == "confirmed"
    assert claims.verdict([ahead, noise]) == "partly"
    assert claims.verdict([ahead, behind]) == "partly"
    assert claims.verdict([noise, behind]) == "refuted"
    assert claims.verdict([noise, noise]) == "within noise"
    assert ahead.text() == "x at 0 +2.0 [1.0, 3.0]"
    assert behind.text() == "x at 0 −2.0 [−3.0, −1.0]"


def test_the_zero_shot_model_forgets_nothing_and_the_issue_22_verdicts(claims):
    cifar = claims.read_sweep(claims.RESULTS / "cifar10_proxy")
    pacs = claims.read_sweep(claims.RESULTS / "pacs_proxy")
    assert set(cifar.sample(claims.FORGETTING, "zero-shot", 0).values()) == {0.0}
    # PACS, no memory: EWC against GCL is within noise; DER does not beat GDRO beyond noise at 50
    assert (
        claims.compare(pacs, claims.FINAL, ("ewc", 0), ("gcl", 0), "").difference.outcome
        == "within noise"
    )
    assert (
        claims.compare(pacs, claims.FINAL, ("der", 50), ("gdro", 50), "").difference.outcome
        == "within noise"
    )
    # CIFAR-10: GCL is ahead of GDRO at the largest memories; CE is not the only method below zero-shot
    assert claims.verdict(claims.gcl_large_memory(cifar)) == "confirmed"
    assert claims.below_zero_shot(cifar) == "CE at 0, 20, 50, 200; Co2L at 0; FOSTER at 0"


def test_an_ablation_is_measured_against_its_proxys_floor(claims):
    # the ablation's unchanged gcl runs are the proxy's gcl runs again: the same forgetting,
    # measured against the proxy's zero-shot runs (the ablation sweep has none of its own)
    ablation = claims.read_sweep(
        claims.RESULTS / "ablation_cifar10", claims.RESULTS / "cifar10_proxy"
    )
    proxy = claims.read_sweep(claims.RESULTS / "cifar10_proxy")
    for memory in (20, 200):
        assert ablation.sample(claims.FORGETTING, "gcl", memory) == proxy.sample(
            claims.FORGETTING, "gcl", memory
        )
    alone = claims.read_sweep(claims.RESULTS / "ablation_cifar10")
    assert alone.values[claims.FORGETTING] == {}  # no floor, no forgetting
