"""Re-running a sweep never reuses results of other data or other settings, never overwrites a
sweep's config silently, and is not blocked by a truncated last line in a run's records."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import yaml
from cli_fixtures import (
    cli,
    forbid_training,
    read_jsonl,
    sweep_records,
    tiny_sweep_config,
    write_config,
    write_domain_tree,
)
from PIL import Image

from avalanche_clip.pipeline.data_identity import DataFingerprintWarning
from avalanche_clip.pipeline.sweep_state import SweepConfigWarning
from avalanche_clip.reporting import TruncatedLineWarning
from avalanche_clip.training.checkpoint import config_differences

RUN = "domain-folder__gcl__m10__s0"


@pytest.fixture
def swept(tmp_path, capsys):
    """A finished one-run sweep on a small DomainNet-layout tree: (config, out, data root)."""
    data = write_domain_tree(tmp_path / "data", per_class=4)  # 2 train, 2 test images per class
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", scenario="domain-folder", data_root=str(data), n_experiences=None,
        scenario_options={}, strategies=["gcl"], mem_sizes=[10], seeds=[0]))  # 12 train images
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr
    return config, out, data


def _snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_records_carry_the_data_fingerprint(swept):
    _, out, _ = swept
    records = read_jsonl(out / "runs" / RUN / "results.jsonl")
    assert len({r["data_fingerprint"] for r in records}) == 1 and len(records[0]["data_fingerprint"]) == 64


def test_the_same_data_moved_elsewhere_is_reused(swept, tmp_path, capsys, monkeypatch):
    config, out, data = swept
    moved = data.rename(tmp_path / "moved")
    before = _snapshot(out / "runs")
    forbid_training(monkeypatch)
    with pytest.warns(SweepConfigWarning, match="changed; the previous sweep config is kept"):
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, f"data_root={moved}")
    assert code == 0, stderr
    assert _snapshot(out / "runs") == before


def test_other_data_at_the_same_place_is_refused_before_training(swept, capsys, monkeypatch):
    config, out, data = swept
    image = data / "photo" / "dog" / "0.png"  # one image of the training data changes
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(image)
    before = _snapshot(out)
    forbid_training(monkeypatch)

    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)

    assert code == 2 and "Traceback" not in stderr
    assert f"{out / 'runs' / RUN} holds results of other data (data fingerprint" in stderr
    assert "choose another --out, or delete that run folder" in stderr
    assert _snapshot(out) == before


def test_a_checkpoint_of_other_data_differs_and_one_without_a_fingerprint_is_unknown():
    config = {"lr": 0.1, "data_fingerprint": "a" * 64}
    assert config_differences(config, {**config, "data_fingerprint": "b" * 64}) == [
        f"data_fingerprint: checkpoint {'a' * 64!r} vs now {'b' * 64!r}"]
    assert config_differences({"lr": 0.1}, config) == []


def test_runs_made_before_fingerprints_are_reused_with_a_warning(swept, capsys, monkeypatch):
    config, out, _ = swept
    results = out / "runs" / RUN / "results.jsonl"
    legacy = [{k: v for k, v in r.items() if k != "data_fingerprint"} for r in read_jsonl(results)]
    results.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    before = _snapshot(out / "runs")
    forbid_training(monkeypatch)
    with pytest.warns(DataFingerprintWarning, match=rf"1 finished or interrupted run\(s\) predate data "
                                                    rf"fingerprints .*{RUN}; delete a run folder"):
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr
    assert _snapshot(out / "runs") == before


def test_changed_settings_with_a_changed_grid_are_refused_and_sweep_yaml_is_kept(swept, capsys, monkeypatch):
    config, out, _ = swept
    before = _snapshot(out)
    forbid_training(monkeypatch)
    # the new grid shares no run with the old one, so no run folder would be reused, yet the
    # report would mix lr=0.001 (seed 0) with lr=0.5 (seed 1)
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "lr=0.5", "seeds=[1]")
    assert code == 2 and "Traceback" not in stderr
    assert f"{out} holds run {RUN} made with other settings (lr: checkpoint 0.001 vs now 0.5)" in stderr
    assert _snapshot(out) == before  # sweep.yaml included


def test_a_changed_grid_keeps_the_previous_sweep_yaml(swept, capsys):
    config, out, _ = swept
    first = (out / "sweep.yaml").read_text()
    with pytest.warns(SweepConfigWarning, match=rf"{out / 'sweep.yaml'} changed; the previous sweep config "
                                                rf"is kept as {out / 'sweep-history' / 'sweep-1.yaml'}"):
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "seeds=[0, 1]")
    assert code == 0, stderr
    assert (out / "sweep-history" / "sweep-1.yaml").read_text() == first
    assert yaml.safe_load((out / "sweep.yaml").read_text())["seeds"] == [0, 1]
    assert sorted(sweep_records(out)) == [RUN, RUN.replace("s0", "s1")]


def test_a_truncated_last_line_does_not_block_the_sweep(swept, capsys, monkeypatch):
    config, out, _ = swept
    results = out / "runs" / RUN / "results.jsonl"
    finished = results.read_bytes()
    results.write_bytes(finished + b'{"accuracy_per_experience": [0.5')  # a cut extra line
    forbid_training(monkeypatch)
    with pytest.warns(TruncatedLineWarning, match=rf"{results}:3: skipped an undecodable last line"):
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr


def test_a_cut_final_record_is_recomputed_identically(swept, capsys):
    config, out, _ = swept
    results = out / "runs" / RUN / "results.jsonl"
    finished = read_jsonl(results)
    results.write_bytes(results.read_bytes()[:-30])  # the final record cut mid-line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedLineWarning)
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rs]  # noqa: E731
    assert strip(read_jsonl(results)) == strip(finished)


def test_a_copied_run_folder_is_returned_without_training(swept, tmp_path, capsys, monkeypatch):
    _, out, _ = swept
    copy = tmp_path / "copy"
    shutil.copytree(out / "runs" / RUN, copy)
    forbid_training(monkeypatch)
    run_config = write_config(tmp_path / "run.yaml", yaml.safe_load((copy / "config.yaml").read_text()))
    code, stdout, stderr = cli(capsys, "run", "--config", run_config, "--out", copy)
    assert code == 0, stderr
    assert RUN in stdout


def test_a_sweep_with_per_strategy_options_and_variants_re_runs(tmp_path, capsys):
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", strategies=["gcl", {"label": "gcl-reset", "strategy": "gcl",
                                                "options": {"reset_loss_state": True}}],
        mem_sizes=[10], seeds=[0], strategy_options={"gcl": {"tau": 0.1}}))
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr
    with pytest.MonkeyPatch.context() as patch:  # the same sweep again: nothing to train
        forbid_training(patch)
        code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)
    assert code == 0, stderr
    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out, "strategy_options.gcl.tau=0.2")
    assert code == 2 and "strategy_options" in stderr and "tau" in stderr
