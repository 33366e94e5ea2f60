"""The ``avalanche-clip`` command line (also ``python -m avalanche_clip``).

    avalanche-clip run    [--config FILE] [--out DIR] [--resume] [key=value ...]
    avalanche-clip sweep  [--config FILE] [--out DIR] [key=value ...]
    avalanche-clip report DIR [--out DIR]
    avalanche-clip list

Without ``--config``, ``sweep`` runs the embedded default comparison
(``avalanche_clip/defaults/comparison.yaml``) and ``run`` its GCL run. Bad names and values fail
before any training, with a message naming the value and the choices (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "comparison.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avalanche-clip", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one run (scenario × strategy × memory × seed)")
    run.add_argument("--config", type=Path, help="YAML run config (default: the embedded comparison's GCL run)")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<run_id>)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys)")
    sweep = commands.add_parser("sweep", help="strategies × memory sizes × seeds (× scenarios), then a report")
    sweep.add_argument("--config", type=Path, help="YAML sweep config (default: the embedded comparison)")
    sweep.add_argument("--out", type=Path, help="sweep folder (default: runs/<config name>)")
    sweep.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys)")
    report = commands.add_parser("report", help="tables and figures from a sweep or run folder")
    report.add_argument("dir", type=Path)
    report.add_argument("--out", type=Path, help="report folder (default: DIR/report)")
    commands.add_parser("list", help="registered scenarios, strategies and models")
    return parser


def _config(path: Path | None, overrides: Sequence[str], *, sweep: bool) -> dict[str, Any]:
    from avalanche_clip.config import load_yaml, parse_overrides, resolve_config

    source = load_yaml(path or DEFAULT_CONFIG)
    if not sweep and path is None:
        source = {k: v for k, v in source.items() if k not in ("strategies", "mem_sizes", "seeds")}
        source.update(strategy="gcl", mem_size=100)
    return resolve_config([source, parse_overrides(overrides)], sweep=sweep)


def _run(args: argparse.Namespace) -> int:
    from avalanche_clip.experiment import execute_run, run_id

    config = _config(args.config, args.overrides, sweep=False)
    out = args.out or Path("runs") / run_id(config)
    records = execute_run(config, out, resume=args.resume)
    final = records[-1]
    print(f"{final['run_id']}: final accuracy {100 * final['stream_accuracy']:.1f}% "
          f"after {final['experience'] + 1} experiences; records in {out / 'results.jsonl'}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from avalanche_clip.sweep import run_sweep

    config = _config(args.config, args.overrides, sweep=True)
    name = args.config.stem if args.config else "default"
    out = args.out or Path("runs") / name
    result = run_sweep(config, out, progress=config["progress"])
    print(result["report"]["table"])
    for line in result["skipped"]:
        print(f"skipped: {line}")
    print(f"\n{result['runs']} runs in {out}; report: {result['report']['report_md']}")
    for failure in result["failures"]:
        print(f"FAILED {failure['run_id']}: {failure['error']}", file=sys.stderr)
    return 1 if result["failures"] else 0


def _report(args: argparse.Namespace) -> int:
    from avalanche_clip.reporting import write_report

    report = write_report(args.dir, args.out)
    print(report["table"])
    print(f"\nreport: {report['report_md']}")
    return 0


def _list(_: argparse.Namespace) -> int:
    from avalanche_clip.models import OFFLINE_MODELS, list_pretrained_tags
    from avalanche_clip.models.offline import OFFLINE_DESCRIPTIONS
    from avalanche_clip.scenarios import SCENARIOS
    from avalanche_clip.strategies import STRATEGIES, strategy_info

    print("scenarios:")
    for name in SCENARIOS.list():
        info = SCENARIOS.info(name)
        print(f"  {name:<18} {info.get('kind', ''):<19} {info.get('description', '')}")
    print("\nstrategies:")
    for name in STRATEGIES.list():
        info = strategy_info(name)
        kinds = "+".join("CIL" if k.startswith("class") else "DIL" for k in info.scenarios)
        print(f"  {name:<10} {kinds:<8} memory={info.memory:<8} {info.description}")
    print("\nmodels: any open_clip architecture (open_clip.list_models()) with its pretrained tags, "
          "or a local checkpoint file; offline configs:")
    for name in sorted(OFFLINE_MODELS):
        tags = list_pretrained_tags(name)
        print(f"  {name:<20} pretrained: {', '.join(tags) if tags else 'none (random init)'}"
              f"  ({OFFLINE_DESCRIPTIONS.get(name, '')})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, before any training)."""
    args = _parser().parse_args(argv)
    handlers = {"run": _run, "sweep": _sweep, "report": _report, "list": _list}
    from avalanche_clip.registry import UnknownNameError

    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, UnknownNameError, TypeError) as err:
        print(f"avalanche-clip {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
