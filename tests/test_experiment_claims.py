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


def test_the_zero_shot_model_forgets_nothing_and_the_cifar10_verdicts(claims):
    cifar = claims.read_sweep(claims.RESULTS / "cifar10_proxy_rerun")
    assert set(cifar.sample(claims.FORGETTING, "zero-shot", 0).values()) == {0.0}
    # CIFAR-10 under issue 22's protocol: GCL is behind GDRO at the two largest memories, GDRO
    # behind EWC without memory, and no method ends below zero-shot beyond noise
    assert claims.verdict(claims.gcl_large_memory(cifar)) == "refuted"
    assert (
        claims.compare(cifar, claims.FINAL, ("gdro", 0), ("ewc", 0), "").difference.outcome
        == "behind"
    )
    assert claims.below_zero_shot(cifar) == "none"


def test_an_ablation_is_measured_against_its_proxys_floor(claims):
    # the ablation's unchanged gcl runs are the proxy's gcl runs again: the same forgetting,
    # measured against the proxy's zero-shot runs (the ablation sweep has none of its own)
    ablation = claims.read_sweep(
        claims.RESULTS / "ablation_cifar10_rerun", claims.RESULTS / "cifar10_proxy_rerun"
    )
    proxy = claims.read_sweep(claims.RESULTS / "cifar10_proxy_rerun")
    for memory in (20, 200):
        own = ablation.sample(claims.FORGETTING, "gcl", memory)  # 3 seeds; the proxy ran 5
        assert own and own == {
            seed: value for seed, value in proxy.sample(claims.FORGETTING, "gcl", memory).items() if seed in own
        }
    alone = claims.read_sweep(claims.RESULTS / "ablation_cifar10_rerun")
    assert alone.values[claims.FORGETTING] == {}  # no floor, no forgetting
