"""The README's examples are real code: they run (on tiny-clip and small data instead of
effnet-lite0-clip on the full data sets, to stay fast) and the bibliography entries agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_runs(capsys):
    code = _python_blocks()[0]
    original = 'create_clip("effnet-lite0-clip", "imagenet", image_size=64)'
    assert original in code
    namespace: dict = {}
    fast = code.replace(original, 'create_clip("tiny-clip")').replace(
        "n_experiences=5,", "n_experiences=5, max_train_per_class=20, max_test_per_class=10,"
    )
    exec(compile(fast, "README-quickstart", "exec"), namespace)
    metrics = namespace["strategy"].evaluator.get_last_metrics()
    assert 0.0 <= metrics["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0
    assert len(namespace["benchmark"].train_stream) == 5


def test_own_benchmark_example_runs(tmp_path, capsys):
    code = _python_blocks()[1]
    model_line = 'create_clip("effnet-lite0-clip", "imagenet", image_size=64)'
    root_line = 'root = "data/cifar10"'
    assert model_line in code and root_line in code and '"checkpoint.pt"' in code
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 1)):  # a tiny ImageFolder tree, 10 classes
        for label in range(10):
            folder = tmp_path / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    fast = (code.replace(model_line, 'create_clip("tiny-clip")')
            .replace(root_line, f'root = "{tmp_path}"')
            .replace('"checkpoint.pt"', f'"{tmp_path / "checkpoint.pt"}"'))
    namespace: dict = {}
    exec(compile(fast, "README-own-benchmark", "exec"), namespace)
    strategy = namespace["strategy"]
    assert strategy.sample_ids.next_id == 30  # every training sample got an id, in arrival order
    assert len(strategy.replay.buffer_ids()) == 30  # (mem_size 100 > 30 samples: all kept)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["experience"] == 4 and "EWCPlugin" in payload["strategy"]["plugins"]


def test_readme_commands_and_citation():
    text = README.read_text()
    assert "bash scripts/setup.sh && .venv/bin/avalanche-clip sweep" in text
    ci_command = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command == ("bash scripts/setup.sh --test && .venv/bin/lint-imports && "
                          ".venv/bin/python -m pytest -q -n 2")
    assert ci_command in text  # the README's test command is what CI runs
    assert (README.parent / "scripts" / "setup.sh").is_file()
    citation = (README.parent / "CITATION.cff").read_text()
    assert "2605.03866" in text and "2605.03866" in citation
    assert "Memory-Efficient Continual Learning with CLIP Models" in citation
