"""The README's quickstart is real code: it runs (on tiny-clip and a digits subsample instead of
effnet-lite0-clip on all digits, to stay fast) and the bibliography entries agree."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_readme_commands_and_citation():
    text = README.read_text()
    assert "bash scripts/setup.sh && .venv/bin/avalanche-clip sweep" in text
    assert "bash scripts/setup.sh --test && .venv/bin/python -m pytest -q" in text
    assert (README.parent / "scripts" / "setup.sh").is_file()
    citation = (README.parent / "CITATION.cff").read_text()
    assert "2605.03866" in text and "2605.03866" in citation
    assert "Memory-Efficient Continual Learning with CLIP Models" in citation
