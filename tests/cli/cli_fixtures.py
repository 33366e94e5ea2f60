"""Helpers for the CLI tests: tiny configs, running ``avalanche_clip.cli.main``, reading records."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))  # strategy_fixtures
from strategy_fixtures import write_domain_tree  # noqa: E402,F401  (re-exported)

from avalanche_clip.cli import main  # noqa: E402

#: The keys every record of results.jsonl must hold (issue 6 plus what reports need).
RECORD_KEYS = (
    "scenario", "strategy", "mem_size", "seed", "experience", "stream_accuracy",
    "accuracy_per_experience", "forgetting", "wall_time_s", "model", "pretrained",
    "zero_shot_accuracy", "final", "run_id",
)


def tiny_config(cache_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A run config that trains in about a second: random tiny-clip, 2 experiences of digits
    (12 train / 6 test images per class), frozen trunk with trainable projections."""
    config = {
        "scenario": "digits",
        "n_experiences": 2,
        "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 6},
        "model": "tiny-clip",
        "pretrained": None,
        "trainable": "projections",
        "strategy": "gcl",
        "mem_size": 10,
        "train_epochs": 1,
        "train_mb_size": 16,
        "eval_mb_size": 64,
        "cache_dir": str(cache_dir),
        "progress": False,
    }
    config.update(overrides)
    return config


def tiny_sweep_config(cache_dir: Path, **overrides: Any) -> dict[str, Any]:
    config = tiny_config(cache_dir, strategies=["zero-shot", "naive", "der", "gcl"],
                         mem_sizes=[0, 10], seeds=[0, 1])
    for key in ("strategy", "mem_size"):
        del config[key]
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def billion_laughs(levels: int, width: int = 9) -> str:
    """A YAML flow value of ``levels`` nested anchors, each ``width`` aliases of the one before
    ("billion laughs"): a few hundred characters that expand to ``width ** levels`` values."""
    names = [chr(ord("a") + i) for i in range(levels)]
    items = [f"&a [{', '.join(['lol'] * width)}]"]
    items += [f"&{names[i]} [{', '.join([f'*{names[i - 1]}'] * width)}]" for i in range(1, levels)]
    return f"[{', '.join(items)}]"


def cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """``avalanche-clip argv...`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def without_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records minus ``wall_time_s``, the one field allowed to differ between equal runs."""
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records]


def sweep_records(out: Path) -> dict[str, list[dict[str, Any]]]:
    """run id -> its records, for every run folder of a sweep."""
    return {d.name: read_jsonl(d / "results.jsonl")
            for d in sorted((out / "runs").iterdir()) if (d / "results.jsonl").is_file()}


def forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building or training any run fail the test (for "nothing is (re)trained")."""
    import avalanche_clip.pipeline.run as experiment
    from avalanche_clip.pipeline.run_loop import ContinualRun

    def fail(*_: Any, **__: Any) -> None:
        pytest.fail("a run was built or trained, but none should have been")

    monkeypatch.setattr(experiment, "prepare_run", fail)
    monkeypatch.setattr(ContinualRun, "run", fail)


class Killed(Exception):
    """Stands for the process dying (not one of the errors the CLI turns into exit code 2)."""


def interrupted_run(out: Path, config: Path) -> Path:
    """Run ``config`` into ``out`` and die right after checkpointing its first experience
    (records: [0], a checkpoint on disk)."""
    import avalanche_clip.pipeline.run_loop as runner

    original = runner.checkpoint_payload

    def die_after_first(**kwargs: Any) -> None:  # the file written now, not by the background writer
        runner.write_checkpoint(out / "checkpoint.pt", original(**kwargs))
        raise Killed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "checkpoint_payload", die_after_first)
        with pytest.raises(Killed):
            main(["run", "--config", str(config), "--out", str(out)])
    return out
