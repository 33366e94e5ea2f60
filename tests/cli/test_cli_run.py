"""``avalanche-clip run``: the run folder, the record schema, finished / unfinished runs, --resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_fixtures import (
    RECORD_KEYS,
    cli,
    forbid_training,
    interrupted_run,
    main,
    read_jsonl,
    tiny_config,
    without_time,
    write_config,
)

import avalanche_clip.pipeline.run_loop as runner
from avalanche_clip.pipeline.config import RUN_KEYS
from avalanche_clip.pipeline.config_schema import WRITTEN_WHEN_SET

RUN_ID = "digits__gcl__m10__s0"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny GCL run: (config file, run folder, checkpoint paths saved on the way)."""
    root = tmp_path_factory.mktemp("run")
    config = write_config(root / "run.yaml", tiny_config(root / "cache"))
    out = root / "out"
    saved = []
    original = runner.write_checkpoint

    def spy(path, payload):  # on the writer thread
        result = original(path, payload)
        saved.append((payload["experience"], Path(path).is_file()))
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "write_checkpoint", spy)
        assert main(["run", "--config", str(config), "--out", str(out)]) == 0
    return config, out, saved


def test_run_writes_the_resolved_config_and_one_record_per_experience(finished):
    config_file, out, saved = finished
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert set(written) == set(RUN_KEYS) - set(WRITTEN_WHEN_SET)  # those appear only when set
    assert written["strategy"] == "gcl" and written["mem_size"] == 10
    assert written["lr"] == RUN_KEYS["lr"][0]  # defaults are written out too
    assert written["cache_dir"] == str((config_file.parent / "cache").resolve())

    records = read_jsonl(out / "results.jsonl")
    assert [r["experience"] for r in records] == [0, 1]
    for t, record in enumerate(records):
        missing = set(RECORD_KEYS) - set(record)
        assert not missing, f"record {t} lacks {sorted(missing)}"
        assert record["run_id"] == RUN_ID
        assert (record["scenario"], record["strategy"], record["mem_size"], record["seed"]) == (
            "digits", "gcl", 10, 0)
        assert (record["model"], record["pretrained"]) == ("tiny-clip", None)
        assert len(record["accuracy_per_experience"]) == t + 1
        assert all(0.0 <= a <= 1.0 for a in record["accuracy_per_experience"])
        assert 0.0 <= record["stream_accuracy"] <= 1.0
        assert 0.0 <= record["zero_shot_accuracy"] <= 1.0
        assert record["wall_time_s"] >= 0.0
        assert record["final"] == (t == 1)
    assert records[0]["forgetting"] is None and isinstance(records[1]["forgetting"], float)
    assert records[1]["wall_time_s"] >= records[0]["wall_time_s"]  # cumulative


def test_checkpoints_are_written_during_the_run_and_deleted_after_the_final_record(finished):
    _, out, saved = finished
    # every experience boundary but the last: the final record finishes the run
    assert saved == [(0, True)]
    assert not (out / "checkpoint.pt").exists()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_rerunning_a_finished_run_returns_its_records_without_training(finished, capsys, monkeypatch):
    config, out, _ = finished
    before = (out / "results.jsonl").read_bytes()
    forbid_training(monkeypatch)

    code, stdout, stderr = cli(capsys, "run", "--config", config, "--out", out)
    assert code == 0, stderr
    assert RUN_ID in stdout and "after 2 experiences" in stdout
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
    assert code == 0, stderr
    assert (out / "results.jsonl").read_bytes() == before


def test_another_config_into_a_finished_run_folder_is_an_error_naming_the_key(finished, capsys, monkeypatch):
    config, out, _ = finished
    before = (out / "results.jsonl").read_bytes()
    forbid_training(monkeypatch)

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "mem_size=20")

    assert code == 2
    assert "another config" in stderr and "mem_size: checkpoint 10 vs now 20" in stderr
    assert "choose another --out" in stderr
    assert (out / "results.jsonl").read_bytes() == before


def test_resume_neutral_keys_may_differ(finished, capsys, monkeypatch):
    config, out, _ = finished
    forbid_training(monkeypatch)
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "progress=true", "num_workers=1")
    assert code == 0, stderr


def _interrupted_run(tmp_path: Path, config: Path) -> Path:
    """A run that died right after checkpointing its first experience."""
    out = interrupted_run(tmp_path / "interrupted", config)
    assert [r["experience"] for r in read_jsonl(out / "results.jsonl")] == [0]
    assert (out / "checkpoint.pt").is_file()
    return out


def test_unfinished_run_needs_resume_and_resume_continues_it(finished, tmp_path, capsys, monkeypatch):
    config, reference_out, _ = finished
    out = _interrupted_run(tmp_path, config)
    partial = (out / "results.jsonl").read_bytes()

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)
    assert code == 2
    assert "holds an unfinished run" in stderr and "--resume" in stderr
    assert (out / "results.jsonl").read_bytes() == partial
    assert (out / "checkpoint.pt").is_file()

    loaded, trained = [], []
    original_load = runner.load_checkpoint
    monkeypatch.setattr(runner, "load_checkpoint",
                        lambda *a, **k: loaded.append(original_load(*a, **k)) or loaded[-1])
    original_record = runner.ContinualRun._record
    monkeypatch.setattr(runner.ContinualRun, "_record",
                        lambda self, t, *a: trained.append(t) or original_record(self, t, *a))

    code, stdout, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")

    assert code == 0, stderr
    assert loaded == [0]  # continued from the checkpoint of experience 0 ...
    assert trained == [1]  # ... training only what was left
    resumed = read_jsonl(out / "results.jsonl")
    assert without_time(resumed) == without_time(read_jsonl(reference_out / "results.jsonl"))
    assert (out / "results.jsonl").read_bytes().startswith(partial)  # record 0 kept as it was
    assert not (out / "checkpoint.pt").exists()
