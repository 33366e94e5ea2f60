"""The package's structure: layers without upward imports, no import circles (``.importlinter``,
checked by import-linter), and no project import hidden inside a function outside ``cli.py``
(a function-local import is how a circle hides from a reader)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avalanche_clip"


def test_layers_hold_and_no_package_has_an_import_circle():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def _local_project_imports(source: str) -> list[int]:
    lines = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(name == "avalanche_clip" or name.startswith("avalanche_clip.") for name in names):
                lines.append(node.lineno)
    return lines


def test_the_local_import_check_finds_one():
    assert _local_project_imports("def f():\n    from avalanche_clip.losses import GCLLoss\n") == [2]
    assert _local_project_imports("from avalanche_clip.losses import GCLLoss\n") == []


#: Modules that defer some project imports to the functions that need them, and why. Each
#: defers an import of Avalanche (``import avalanche`` alone costs ~10 s), so that reading the
#: registries' metadata (``avalanche-clip report``, the config checks) does not pay it. The
#: import-linter contracts above still see these imports (grimp reads function bodies too).
DEFERRED = {
    "avalanche_clip/assets/__init__.py": "check_assets reads the scenario catalog",
    "avalanche_clip/scenarios/__init__.py": "the stream builders (Avalanche) load on first access",
    "avalanche_clip/strategies/__init__.py": "the strategy classes load on first access",
    "avalanche_clip/strategies/catalog.py": "each factory imports the strategy class it builds",
    "avalanche_clip/strategies/option_rules.py": "ZSCL's reference rule reads the scenarios' held-out sets",
}


def test_no_function_imports_the_project_outside_the_command_line():
    found = {name: lines for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "cli.py" and (name := str(path.relative_to(ROOT))) not in DEFERRED
             and (lines := _local_project_imports(path.read_text()))}
    assert found == {}, f"move these imports to the top of their module: {found}"


def test_the_deferring_modules_still_defer_and_the_registries_load_without_avalanche():
    assert all(_local_project_imports((ROOT / name).read_text()) for name in DEFERRED)
    code = ("import sys\n"
            "import avalanche_clip.assets, avalanche_clip.cli, avalanche_clip.reporting\n"
            "from avalanche_clip.strategies import STRATEGIES, option_rules, strategy_hparams, strategy_roles\n"
            "roles = strategy_roles(); rules = option_rules('zscl')\n"
            "assert roles['icarl']['own_exemplars'] and roles['joint']['joint'], roles\n"
            "assert 'avalanche' not in sys.modules, 'the registry imported avalanche'\n"
            "import io, contextlib\n"
            "from avalanche_clip.scenarios import SCENARIOS, scenario_kind, source_options\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: avalanche_clip.cli.main(['list'])\n"
            "assert 'split-imagefolder' in out.getvalue() and scenario_kind('domainnet') == 'domain-incremental'\n"
            "assert 'avalanche' not in sys.modules, 'the scenario registry or list imported avalanche'\n"
            "assert rules['reference']('reference', None) is None\n"
            "assert set(strategy_hparams('gcl')) >= {'tau', 'gamma'}\n"
            "from avalanche_clip.scenarios import build_scenario, SAMPLE_INDEX_POSITION\n"
            "assert 'avalanche' in sys.modules and SAMPLE_INDEX_POSITION == 2\n"
            "from avalanche_clip.strategies import GCLStrategy\n"
            "assert 'avalanche' in sys.modules and GCLStrategy.__name__ == 'GCLStrategy'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
