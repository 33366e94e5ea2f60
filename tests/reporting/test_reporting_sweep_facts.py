"""What a sweep's records say of its protocol (negatives, views, iCaRL's score) and its retention
drops per seed (reporting/sweep_facts.py), on hand-written records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avalanche_clip.reporting import load_records
from avalanche_clip.reporting.records import final_records
from avalanche_clip.reporting.sweep_facts import (
    icarl_text,
    negatives_text,
    protocol_text,
    retention_drops,
    views_text,
)


def _write(root: Path, runs: list[dict]) -> Path:
    """One run folder per entry: a non-final record of experience 0 (its fields ignored by the
    facts, which read the final record) and the final record of experience 1 with ``extra``."""
    for run in runs:
        strategy, mem, seed = run["strategy"], run["mem_size"], run["seed"]
        run_id = f"s__{strategy}__m{mem}__s{seed}"
        base = {"scenario": "s", "strategy": strategy, "mem_size": mem, "seed": seed,
                "n_experiences": 2, "stream_accuracy": 0.5, "run_id": run_id}
        first = {**base, "experience": 0, "final": False, "train_logits": "stale",
                 "retention_drop": {"h": 0.9}}
        last = {**base, "experience": 1, "final": True, **run.get("extra", {})}
        (root / run_id).mkdir(parents=True)
        (root / run_id / "results.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(last) + "\n")
    return root


def _run(strategy: str, mem: int = 0, seed: int = 0, **extra) -> dict:
    return {"strategy": strategy, "mem_size": mem, "seed": seed, "extra": extra}


def _finals(tmp_path: Path, runs: list[dict]):
    return final_records(load_records(_write(tmp_path / "sweep", runs)))


def test_records_from_before_the_fields_say_so(tmp_path):
    finals = _finals(tmp_path, [_run("zero-shot"), _run("gcl"), _run("icarl", 20)])
    assert negatives_text(finals) == "train_logits not recorded (records written before it was)"
    assert views_text(finals) == "one un-augmented view per image (no feature_views recorded)"
    assert icarl_text(finals) == (
        "iCaRL scored by its nearest-mean-of-exemplars classifier (records written before iCaRL "
        "was scored by the prompt head)")


def test_one_protocol_value_is_stated_and_views_are_grouped(tmp_path):
    runs = [_run("zero-shot", train_logits="seen"),
            _run("gcl", train_logits="seen", feature_views=4, views_per_item=1),
            _run("co2l", 20, train_logits="seen", feature_views=4, views_per_item=2),
            _run("icarl", 20, train_logits="seen", ncm_stream_accuracy=0.4)]
    finals = _finals(tmp_path, runs)
    assert negatives_text(finals) == "train_logits=seen"
    # the zero-shot and iCaRL records carry no views: one un-augmented view each
    assert views_text(finals) == (
        "views differ: feature_views=1, views_per_item=1 (icarl, zero-shot); feature_views=4, "
        "views_per_item=1 (gcl); feature_views=4, views_per_item=2 (co2l)")
    assert icarl_text(finals) == "iCaRL scored by the prompt head (its nearest-mean accuracy recorded beside)"
    assert protocol_text(load_records(tmp_path / "sweep")) == "; ".join(
        [negatives_text(finals), views_text(finals), icarl_text(finals)])


def test_mixed_records_name_who_recorded_what(tmp_path):
    runs = [_run("gcl", train_logits="batch", feature_views=2, views_per_item=2),
            _run("gdro", train_logits="seen", feature_views=2, views_per_item=2), _run("ce"),
            _run("icarl", 20, seed=0, ncm_stream_accuracy=0.4), _run("icarl", 20, seed=1)]
    finals = _finals(tmp_path, runs)
    assert negatives_text(finals) == "train_logits differs: batch (gcl); not recorded (ce, icarl); seen (gdro)"
    assert views_text(finals) == ("views differ: feature_views=1, views_per_item=1 (ce, icarl); "
                                  "feature_views=2, views_per_item=2 (gcl, gdro)")
    assert icarl_text(finals) == ("iCaRL scored by the prompt head in 1 of 2 runs, by its nearest-mean "
                                  "classifier in the others (records written before the prompt-head score)")
    assert "iCaRL" not in protocol_text(load_records(_write(tmp_path / "other", [_run("gcl")])))


def test_one_view_for_every_run_is_stated_as_such(tmp_path):
    finals = _finals(tmp_path, [_run("gcl", feature_views=3, views_per_item=2)])
    assert views_text(finals) == "feature_views=3, views_per_item=2"


def test_retention_drops_are_the_final_records_per_set_and_seed(tmp_path):
    runs = [_run("gcl", 0, seed, retention_drop={"h": 0.1 * seed, "k": -0.05})
            for seed in (0, 1)] + [_run("gdro", 20, 2, retention_drop={"h": 0.02}), _run("ce")]
    drops = retention_drops(load_records(_write(tmp_path / "sweep", runs)))
    # the non-final record's 0.9 is not read; the run without sets adds nothing
    assert drops == {"h": {("gcl", 0): {0: 0.0, 1: pytest.approx(0.1)}, ("gdro", 20): {2: 0.02}},
                     "k": {("gcl", 0): {0: -0.05, 1: -0.05}}}
    assert retention_drops(load_records(_write(tmp_path / "none", [_run("gcl")]))) == {}
