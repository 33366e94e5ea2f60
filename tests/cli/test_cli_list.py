"""``avalanche-clip list``: every registered scenario and strategy, and the offline models."""

from __future__ import annotations

import re
import subprocess
import sys

from cli_fixtures import cli

from avalanche_clip.models import OFFLINE_MODELS
from avalanche_clip.models.factory import default_pretrained
from avalanche_clip.scenarios import SCENARIOS, scenario_kind
from avalanche_clip.strategies import STRATEGIES, strategy_info


def _section(text: str, title: str) -> list[str]:
    """The indented lines under ``title:``."""
    lines = text.split(f"{title}:", 1)[1].splitlines()[1:]
    out = []
    for line in lines:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


def test_list_prints_every_scenario_strategy_and_offline_model(capsys):
    code, out, err = cli(capsys, "list")
    assert code == 0, err

    scenarios = {line.split()[0]: line for line in _section(out, "scenarios")}
    assert set(scenarios) == set(SCENARIOS.list())
    for name, line in scenarios.items():
        assert scenario_kind(name) in line

    strategies = {line.split()[0]: line for line in _section(out, "strategies")}
    assert set(strategies) == set(STRATEGIES.list())
    for name, line in strategies.items():
        info = strategy_info(name)
        assert f"memory={info.memory}" in line
        kinds = re.split(r"\s+", line)[1]
        assert ("DIL" in kinds) == ("domain-incremental" in info.scenarios), line
        assert ("CIL" in kinds) == ("class-incremental" in info.scenarios), line
    assert "CIL " in strategies["icarl"] and "DIL" not in strategies["icarl"].split("memory")[0]

    models = {line.split()[0]: line for line in _section(out.split("models:", 1)[1], "offline configs")}
    assert set(models) == set(OFFLINE_MODELS)
    for name, line in models.items():  # each offline model with the default a run without a pretrained line loads
        assert f"default pretrained: {default_pretrained(name) or 'none (random init)'};" in line
    assert "default pretrained: imagenet;" in models["effnet-lite0-clip"]
    assert "default pretrained: none (random init);" in models["tiny-clip"]
    assert "ViT-B-16: laion400m_e31" in out  # and the rule for open_clip architectures
    assert "imagenet-minilm" in models["minilm-effnet-conse"]
    assert "ConSE dual encoder, not CLIP" in models["minilm-effnet-conse"]


def test_a_fresh_command_prints_no_qp_solver_warning():
    """Avalanche imports qpsolvers, which warns in every fresh process without a QP solver; our
    commands hide that one warning (and only it)."""
    done = subprocess.run([sys.executable, "-m", "avalanche_clip", "list"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "QP solver" not in done.stderr and "qpsolvers" not in done.stderr, done.stderr
    assert "strategies:" in done.stdout
