"""experiments/tuning_noise.py: spreads between tunes that differ only in their sampler seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "tuning_noise.py"


@pytest.fixture(scope="module")
def noise():
    spec = importlib.util.spec_from_file_location("experiment_tuning_noise", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tune(path: Path, sampler_seed: int, scores: dict[str, dict[int, float]], *, trials: int = 12) -> Path:
    strategies = {
        label: {"strategy": label, "by_mem_size": {m: {"value": v, "standard_error": 0.03, "params": {"lr": 1e-3, "tau": 0.1}}
                                for m, v in by_mem.items()}}
        for label, by_mem in scores.items()}
    settings = {"trials": trials, "sampler_seed": sampler_seed, "storage": f"db{sampler_seed}", "seeds": [0]}
    path.write_text(yaml.safe_dump({"settings": settings, "strategies": strategies}))
    return path


def test_spreads_are_max_minus_min_per_study_and_averaged_per_strategy(noise, tmp_path):
    a = _tune(tmp_path / "a.yaml", 0, {"gcl": {0: 0.50, 20: 0.60}, "co2l": {0: 0.30}})
    b = _tune(tmp_path / "b.yaml", 1, {"gcl": {0: 0.55, 20: 0.59}, "co2l": {0: 0.42}})
    c = _tune(tmp_path / "c.yaml", 2, {"gcl": {0: 0.47, 20: 0.60}, "co2l": {0: 0.36}})
    rows = noise.study_rows(noise.load_tunes([a, b, c]))
    spreads = {(r["strategy"], r["memory"]): r["spread"] for r in rows}
    assert spreads == pytest.approx({("gcl", 0): 8.0, ("gcl", 20): 1.0, ("co2l", 0): 12.0})
    summary = {s["strategy"]: s for s in noise.strategy_rows(rows)}
    assert summary["gcl"]["mean_spread"] == pytest.approx(4.5)
    assert summary["gcl"]["max_spread"] == pytest.approx(8.0) and summary["gcl"]["max_at"] == 0
    assert summary["co2l"]["ratio"] == pytest.approx(12.0 / 3.0)
    assert summary["gcl"]["n_params"] == 2
    block = noise.render(noise.load_tunes([a, b, c]), ["a", "b", "c"])
    assert "the mean spread is 7.0 points, 2.3 times their mean SE (3.0); 2 of them spread" in block


def test_the_block_counts_the_studies_at_a_bound_per_tune(noise, tmp_path):
    a = _tune(tmp_path / "a.yaml", 0, {"gcl": {0: 0.5, 20: 0.6}})
    b = _tune(tmp_path / "b.yaml", 1, {"gcl": {0: 0.5, 20: 0.6}})
    tunes = noise.load_tunes([a, b])
    tunes[1]["strategies"]["gcl"]["by_mem_size"][20]["at_bound"] = [{"param": "tau", "bound": "high"}]
    for tune in tunes:
        tune["strategies"]["gcl"]["by_mem_size"][0]["bound_walks"] = [{"param": "tau", "value": 1, "start_value": 1}]
    tunes[1]["strategies"]["gcl"]["by_mem_size"][20]["bound_walks"] = [{"param": "lr", "value": 1, "start_value": 2}]
    block = noise.render(tunes, ["a", "b"])
    assert "walked past it: 1 (seed 0), 2 (seed 1); still at a bound after the walk: 0 (seed 0), 1 (seed 1)." in block


def test_a_study_missing_from_one_tune_is_left_out(noise, tmp_path):
    a = _tune(tmp_path / "a.yaml", 0, {"gcl": {0: 0.5, 20: 0.6}})
    b = _tune(tmp_path / "b.yaml", 1, {"gcl": {0: 0.4}})
    rows = noise.study_rows(noise.load_tunes([a, b]))
    assert [(r["strategy"], r["memory"]) for r in rows] == [("gcl", 0)]


def test_tunes_of_other_settings_are_refused_naming_the_key(noise, tmp_path):
    a = _tune(tmp_path / "a.yaml", 0, {"gcl": {0: 0.5}})
    b = _tune(tmp_path / "b.yaml", 1, {"gcl": {0: 0.5}}, trials=24)
    with pytest.raises(noise.TuningNoiseError, match=r"\['trials'\] differ"):
        noise.load_tunes([a, b])
    with pytest.raises(noise.TuningNoiseError, match="at least two"):
        noise.load_tunes([a])


def test_the_readme_block_is_what_the_committed_tunes_give(noise):
    assert noise.main(["--check"]) == 0


def test_a_readme_without_the_markers_is_refused_naming_the_file(noise):
    from avalanche_clip.reporting.readme_markers import ReadmeMarkerError, replace_between

    with pytest.raises(ReadmeMarkerError, match=r"notes\.md must hold exactly one <!-- tuning-noise:begin -->"):
        replace_between("no markers here\n", noise.MARKER, "table\n", Path("notes.md"))
