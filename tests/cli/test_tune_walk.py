"""The bound walk that ends every study: on scores whose optimum is known it goes past the bound
as far as the score improves, stops for the reasons it records, widens the study's space so the
value it keeps is no longer at a bound, and a sweep accepts the walked value only inside that
widening. End to end: ``walk-bounds`` on a real tuned.yaml of DER on images."""

from __future__ import annotations

import math
import warnings

import pytest
import yaml
from cli_fixtures import cli, read_jsonl, write_config
from test_cli_tune import sweep_config, write_image_folder

from avalanche_clip.cli import main
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.tune import validation_score
from avalanche_clip.pipeline.tune_settings import tune_settings
from avalanche_clip.pipeline.tune_walk import (
    DOMAIN_LIMIT,
    MOVE_LIMIT,
    NEIGHBOUR_LOWER,
    RefusedValue,
    walk_bound,
    walk_bounds,
)
from avalanche_clip.pipeline.tuned_values import read_tuned
from avalanche_clip.strategies.spaces import near_bound, widen

LOG = {"type": "float", "low": 0.01, "high": 10.0, "log": True}  # log width ln(1000): a step of ×2
LINEAR = {"type": "float", "low": 0.0, "high": 1.0}


def peaked(at: float, *, log: bool = True):
    """A score with one maximum at ``at``, and the points it was asked for."""
    asked: list[float] = []

    def score(x: float) -> float:
        asked.append(x)
        return -abs(math.log(x) - math.log(at)) if log else -abs(x - at)

    return score, asked


def test_it_walks_down_while_the_score_improves_and_keeps_the_value_a_step_inside():
    score, asked = peaked(0.002)  # past the low bound 0.01, ~2.3 steps of ×1/2 below it
    walk = walk_bound(score, "tau", 0.011, score(0.011), LOG, "low")
    step = math.exp(0.1 * math.log(1000))
    points = [0.011 / step ** k for k in (1, 2, 3, 4)]
    assert asked[1:] == pytest.approx(points[: len(asked) - 1], rel=1e-12)  # each point once, in order
    assert walk.value == pytest.approx(0.011 / step ** 2) and walk.stopped == NEIGHBOUR_LOWER
    assert walk.score == score(walk.value) > walk.start_score
    assert walk.space["low"] == pytest.approx(0.011 / step ** 3) and walk.space["high"] == 10.0
    # the value kept lies one step inside the widened space: no longer within 5 % of its bound
    assert near_bound(walk.value, walk.space) is None and near_bound(0.011, LOG) == "low"


def test_a_lower_neighbour_past_the_bound_keeps_the_value_and_measures_the_bound():
    score, asked = peaked(5.0)
    walk = walk_bound(score, "tau", 9.8, score(9.8), LOG, "high")
    assert walk.value == 9.8 and walk.stopped == NEIGHBOUR_LOWER and len(asked) == 2
    assert walk.space["high"] == pytest.approx(9.8 * math.exp(0.1 * math.log(1000)))
    assert near_bound(9.8, walk.space) is None  # 1/11 of the widened width from its top


def test_a_value_kept_after_a_short_step_is_more_than_5_percent_inside():
    def score(x):  # a fraction in (0, 1): the strategy refuses 0 and below; lower past the bound
        if x <= 0:
            raise RefusedValue(f"fraction must lie in (0, 1), got {x}")
        return x

    spec = {"type": "float", "low": 0.05, "high": 0.95}
    walk = walk_bound(score, "fraction", 0.0585, 0.0585, spec, "low")  # lower anywhere past it
    assert walk.scored[0]["value"] < 0 and "refused" in walk.scored[0]
    assert walk.scored[1]["value"] == pytest.approx(0.0585 - 0.06 * 0.9) and walk.stopped == NEIGHBOUR_LOWER
    assert walk.value == 0.0585 and near_bound(0.0585, walk.space) is None


def test_ties_keep_the_tuned_value():
    walk = walk_bound(lambda x: 0.5, "tau", 0.01, 0.5, LOG, "low")
    assert walk.value == 0.01 and walk.stopped == NEIGHBOUR_LOWER and len(walk.scored) == 1


def test_a_refused_step_is_shortened_and_a_refused_short_step_is_the_parameters_limit():
    def score(x):  # a weight in [0, 1): the strategy refuses a negative one
        if x < 0:
            raise RefusedValue(f"beta must lie in [0, 1), got {x}")
        return -abs(x + 0.01)

    walk = walk_bound(score, "beta", 0.04, score(0.04), LINEAR, "low")
    # 0.04 - 0.1 refused, 0.04 - 0.06 refused: the bound 0 is the parameter's own limit
    assert walk.stopped == DOMAIN_LIMIT and walk.value == 0.04
    assert [point["value"] for point in walk.scored] == pytest.approx([-0.06, -0.02])
    assert all("refused" in point for point in walk.scored)
    assert walk.space["limit"] == ["low"] and near_bound(0.04, walk.space) is None
    short = walk_bound(score, "beta", 0.05, score(0.05), LINEAR, "low")  # 0.05 - 0.1 refused, 0.05 - 0.06 too
    assert short.stopped == DOMAIN_LIMIT
    accepted = walk_bound(lambda x: score(x) + 0.01, "beta", 0.08, -0.08, LINEAR, "low")  # best at 0
    # 0.08 - 0.1 refused, the short step to 0.02 accepted and better; then 0.02 - 0.1, 0.02 - 0.06 refused
    assert accepted.value == pytest.approx(0.02) and accepted.stopped == DOMAIN_LIMIT
    assert accepted.space["low"] == 0.0 and accepted.space["limit"] == ["low"]


def test_it_stops_after_its_moves_and_then_the_value_is_still_at_a_bound():
    score, _ = peaked(1e-9)
    walk = walk_bound(score, "tau", 0.01, score(0.01), LOG, "low", moves=2)
    assert walk.stopped == MOVE_LIMIT and walk.value == walk.space["low"]
    assert near_bound(walk.value, walk.space) == "low"  # reported by tune as at_bound


def test_int_spaces_step_by_at_least_one_and_try_a_point_once():
    spec = {"type": "int", "low": 1, "high": 10}
    walk = walk_bound(lambda x: float(x), "epochs", 10, 10.0, spec, "high", moves=1)
    assert walk.scored[0]["value"] == 11 and walk.space["high"] == 11

    def refuse_zero(x):
        if x < 1:
            raise RefusedValue(f"epochs must be >= 1, got {x}")
        return 0.0

    low = walk_bound(refuse_zero, "epochs", 1, 0.5, spec, "low")  # the short step is 0 again: not retried
    assert low.stopped == DOMAIN_LIMIT and low.scored == [{"value": 0, "refused": "epochs must be >= 1, got 0"}]


def test_any_other_failure_of_a_run_propagates_rather_than_passing_for_a_limit():
    def broken(x):
        raise ValueError("a run folder of other values")

    with pytest.raises(ValueError, match="a run folder of other values"):
        walk_bound(broken, "tau", 0.011, 0.5, LOG, "low")


def test_after_moves_a_short_last_step_can_leave_the_value_at_a_bound_and_at_bound_says_so():
    def score(x):  # better up to 1.2, the strategy refuses 1.27 and above
        if x > 1.27:
            raise RefusedValue(f"x must be <= 1.27, got {x}")
        return -abs(x - 1.2)

    walk = walk_bound(score, "x", 1.0, score(1.0), LINEAR, "high")
    # 1.1, 1.2 better; 1.3 refused, 1.26 lower: kept 1.2, 0.06 from the widened top 1.26
    assert walk.value == pytest.approx(1.2) and walk.stopped == NEIGHBOUR_LOWER
    assert walk.space["high"] == pytest.approx(1.26) and near_bound(walk.value, walk.space) == "high"


def test_walk_bounds_walks_each_parameter_at_a_bound_with_the_values_before_it():
    space = {"a": LOG, "b": LINEAR, "c": LOG}
    calls = []

    def score(params):
        calls.append(dict(params))
        return -abs(math.log(params["a"]) - math.log(0.005)) - abs(params["b"] - 1.05)

    start = {"a": 0.0105, "b": 0.5, "c": 9.9}  # a at its low bound, b inside, c at its high bound
    params, value, walks, widened = walk_bounds(score, start, score(start), space)
    assert [walk["param"] for walk in walks] == ["a", "c"] and set(widened) == {"a", "c"}
    assert params["b"] == 0.5 and params["a"] < 0.01 and params["c"] == 9.9  # c's score is flat: kept
    assert all(call["a"] == params["a"] for call in calls if call["c"] != 9.9)  # c walked with a's new value
    assert value == score(params)
    untouched = walk_bounds(lambda p: pytest.fail("nothing at a bound: nothing to score"),
                            {"a": 0.5, "b": 0.5}, 0.3, space)
    assert untouched == ({"a": 0.5, "b": 0.5}, 0.3, [], {})


def test_widen_accepts_only_a_widening():
    space = {"tau": LOG, "beta": {**LINEAR, "limit": ["high"]}}
    wider = widen(space, {"tau": {**LOG, "low": 0.001}})
    assert wider["tau"]["low"] == 0.001 and wider["beta"] == space["beta"]
    for bad, why in (({"tau": {**LOG, "low": 0.1}}, "does not contain"),
                     ({"tau": {**LOG, "log": False}}, "does not contain"),
                     ({"beta": {**LINEAR}}, "does not contain"),  # a limit dropped
                     ({"gamma": LOG}, "not a parameter")):
        with pytest.raises(ValueError, match=why):
            widen(space, bad)


@pytest.fixture(scope="module")
def der_tuned(tmp_path_factory):
    """A one-trial tune of DER at memory 4 on the tiny image folder, its alpha then moved to the low
    bound of its space with the score that value really gets: (config, tuned.yaml, alpha's score)."""
    tmp = tmp_path_factory.mktemp("walk")
    root = write_image_folder(tmp / "images")
    config = write_config(tmp / "tune.yaml", sweep_config(
        root, tmp / "cache", strategies=["der"], mem_sizes=[4], tune={"trials": 1, "validation_fraction": 0.3}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["tune", "--config", str(config), "--out", str(tmp / "tuned")]) == 0
    document = yaml.safe_load((tmp / "tuned" / "tuned.yaml").read_text())
    study = document["strategies"]["der"]["by_mem_size"][4]
    # what tune wrote: every study walked, and what stays at a bound only where a walk ran out of moves
    walked = {walk["param"] for walk in study["bound_walks"] if walk["stopped"] == MOVE_LIMIT}
    assert {item["param"] for item in study["at_bound"]} <= walked and "widened" in study
    sweep = yaml.safe_load(config.read_text())
    params = {**study["params"], "alpha": 0.0011}  # within 5 % of alpha's low bound 0.001 (log scale)
    scored = validation_score(sweep, tune_settings(sweep), "der", params, 4, tmp / "alpha-at-bound")
    study.update(params=params, value=scored.value)
    del study["bound_walks"], study["widened"]  # as a file written before the walks existed
    edited = tmp / "edited.yaml"
    edited.write_text(yaml.safe_dump(document))
    return config, edited, scored.value


def test_walk_bounds_walks_a_value_at_a_bound_and_the_sweep_accepts_it(der_tuned, tmp_path, capsys):
    config, edited, start = der_tuned
    code, out, _ = cli(capsys, "walk-bounds", "--config", config, "--tuned", edited, "--out", tmp_path / "walk")
    assert code == 0 and "der" in out and "alpha 0.0011 ->" in out
    study = read_tuned(tmp_path / "walk" / "tuned.yaml")["strategies"]["der"]["by_mem_size"][4]
    (walk,) = [w for w in study["bound_walks"] if w["param"] == "alpha"]
    assert walk["start_value"] == 0.0011 and walk["start_score"] == start
    assert walk["scored"][0]["value"] == pytest.approx(0.0011 * math.exp(-0.1 * math.log(1000)))
    assert study["widened"]["alpha"]["low"] == pytest.approx(min(p["value"] for p in walk["scored"]))
    assert study["params"]["alpha"] == walk["value"] and study["value"] == walk["score"] >= start
    assert not [item for item in study["at_bound"] if item["param"] == "alpha"] or walk["stopped"] == MOVE_LIMIT
    # each point's runs are real: the walked value re-scores to what the walk recorded
    sweep = yaml.safe_load(config.read_text())
    again = validation_score(sweep, tune_settings(sweep), "der", study["params"], 4, tmp_path / "again")
    assert again.value == study["value"]
    # the sweep applies it (checked against the widened space) ...
    assert walk["value"] < 0.001 or study["params"]["alpha"] == 0.0011  # outside the registered space or kept
    code, _, err = cli(capsys, "sweep", "--config", config, "--out", tmp_path / "sweep",
                       "--tuned", tmp_path / "walk" / "tuned.yaml")
    assert code == 0, err
    record = read_jsonl(tmp_path / "sweep" / "runs" / "tiny__der__m4__s0" / "results.jsonl")[-1]
    assert record["hyperparameters"]["alpha"] == pytest.approx(walk["value"])
    # ... but not a value outside the registered space that no walk widened it to
    document = yaml.safe_load((tmp_path / "walk" / "tuned.yaml").read_text())
    document["strategies"]["der"]["by_mem_size"][4]["widened"] = {}
    document["strategies"]["der"]["by_mem_size"][4]["params"]["alpha"] = 0.0004
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="alpha=0.0004 is outside its search space"):
        read_tuned(tmp_path / "bad.yaml")
    # ... nor a space widened by hand rather than by a walk
    document["strategies"]["der"]["by_mem_size"][4]["widened"] = {"alpha": {**walk["space"], "low": 1e-6}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="widened space of 'alpha' is .* but no bound walk of 'alpha' recorded it"):
        read_tuned(tmp_path / "bad.yaml")
    # idempotent, and a finished file is never written over
    code, _, err = cli(capsys, "walk-bounds", "--config", config, "--tuned", edited, "--out", tmp_path / "walk")
    assert code == 2 and "does not write over a finished file" in err
    code, out, _ = cli(capsys, "walk-bounds", "--config", config, "--tuned", tmp_path / "walk" / "tuned.yaml",
                       "--out", tmp_path / "walk2")
    assert code == 0 and "0 studies walked" in out


def test_walk_bounds_refuses_a_study_whose_score_does_not_reproduce(der_tuned, tmp_path, capsys):
    config, edited, start = der_tuned
    document = yaml.safe_load(edited.read_text())
    document["strategies"]["der"]["by_mem_size"][4]["value"] = start / 2 + 0.01  # not what its values score
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(document))
    code, _, err = cli(capsys, "walk-bounds", "--config", config, "--tuned", other, "--out", tmp_path / "walk")
    assert code == 2 and "re-scoring its tuned values" in err and "re-run the tune on this machine" in err
    assert not (tmp_path / "walk" / "tuned.yaml").exists()
    # --rescore: walked from what its values score here, the tune's value kept beside
    code, out, err = cli(capsys, "walk-bounds", "--config", config, "--tuned", other, "--out", tmp_path / "walk",
                         "--rescore")
    assert code == 0, err
    study = read_tuned(tmp_path / "walk" / "tuned.yaml")["strategies"]["der"]["by_mem_size"][4]
    assert study["tune_value"] == start / 2 + 0.01
    (walk,) = [w for w in study["bound_walks"] if w["param"] == "alpha"]
    assert walk["start_score"] == start  # the re-score, not the recorded value
