"""The ``avalanche-clip`` command line (also ``python -m avalanche_clip``).

    avalanche-clip run     [--config FILE] [--out DIR] [--resume] [key=value ...]
    avalanche-clip sweep   [--config FILE] [--out DIR] [--workers N|auto] [--ray-address ADDR] [key=value ...]
    avalanche-clip tune    [--config FILE] [--out DIR] [--trials N] [--storage URL] [key=value ...]
    avalanche-clip check-optimum [--config FILE] [--tuned FILE] [--out DIR] [--factor F]
                                 [--strategies A,B] [--mem-sizes M,N] [--force] [key=value ...]
    avalanche-clip walk-bounds [--config FILE] [--tuned FILE] [--out DIR] [--rescore] [key=value ...]
    avalanche-clip prepare [--config FILE] [--check] [key=value ...]
    avalanche-clip report  DIR [--out DIR]
    avalanche-clip list    [--spaces]

Without ``--config``, ``sweep`` runs the embedded default comparison
(``avalanche_clip/defaults/comparison.yaml``) and ``run`` its GCL run. ``key=value`` overrides may
stand anywhere on the line. Bad names and values, and weights or data that are not on this
machine, fail before any training with a message naming them (exit code 2).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "comparison.yaml"
_SWEEP_ONLY = ("strategies", "mem_sizes", "seeds", "scenarios")
_EMBEDDED_RUN = {"strategy": "gcl", "mem_size": 100}  # `avalanche-clip run` without --config


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog is built only when help is shown (the defaults it lists
    need the model registry, which is slow to import)."""

    def __init__(self, *args: Any, epilog_fn: Callable[[], str] | None = None, **kwargs: Any) -> None:
        self._epilog_fn = epilog_fn
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        if self._epilog_fn is not None:
            self.epilog = self._epilog_fn()
        return super().format_help()


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(prog="avalanche-clip", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    overrides = {"nargs": "*", "metavar": "key=value", "help": "config overrides (dotted keys), anywhere on the line"}
    run = sub.add_parser("run", help="one run (scenario × strategy × memory × seed)", formatter_class=raw,
                         epilog_fn=lambda: _keys_help(sweep=False))
    run.add_argument("--config", type=Path, help="YAML run config (default: the embedded comparison's GCL run)")
    run.add_argument("--out", type=Path, help="run folder (default: runs/<run_id>)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    run.add_argument("--tuned", type=Path, help="a tuned.yaml of `avalanche-clip tune`: the run's strategy takes "
                     "its values (with a sweep config: the values its sweep would give that strategy)")
    run.add_argument("overrides", **overrides)
    sweep = sub.add_parser("sweep", help="strategies × memory sizes × seeds (× scenarios), then a report",
                           formatter_class=raw, epilog_fn=lambda: _keys_help(sweep=True))
    sweep.add_argument("--config", type=Path, help="YAML sweep config (default: the embedded comparison)")
    sweep.add_argument("--out", type=Path, help="sweep folder (default: runs/<config name>)")
    sweep.add_argument("--workers", help="runs at a time, in worker processes of this machine: a number, or "
                       "auto (default, or env AVALANCHE_CLIP_SWEEP_WORKERS): one per core for CPU runs, 1 for GPU "
                       "runs; each run gets threads = cores // workers unless threads= is set (1: one "
                       "after another on torch's threads)")
    sweep.add_argument("--ray-address", help="run the --workers N runs on a Ray cluster instead (the 'cluster' "
                       "extra), e.g. auto, ray://head:10001, or local (a Ray instance started here); --out "
                       "and the feature cache must be on a shared file system")
    sweep.add_argument("--tuned", type=Path, help="apply the per-strategy values of a tuned.yaml "
                       "written by avalanche-clip tune (same as the config key tuned=PATH)")
    sweep.add_argument("overrides", **overrides)
    tune = sub.add_parser("tune", help="tune every strategy of a sweep config on a validation split "
                          "(same trial budget each; the test split is never read)",
                          formatter_class=raw)
    tune.add_argument("--config", type=Path, help="YAML sweep config (default: the embedded comparison)")
    tune.add_argument("--out", type=Path, help="tune folder (default: runs/<config name>-tune); "
                      "writes tuned.yaml, the trials' runs and the study")
    tune.add_argument("--trials", type=int, help="trials per strategy and memory size (default: the config's "
                      "tune.trials, else 20)")
    tune.add_argument("--storage", help="Optuna storage URL shared by several machines, e.g. "
                      "postgresql://user@host/db (default: sqlite under --out)")
    tune.add_argument("overrides", **overrides)
    optimum = sub.add_parser("check-optimum", help="re-score each tuned learning rate and its neighbours "
                             "lr / F and lr · F, and each value at a bound of its space past that bound, on the "
                             "tune's validation split (exit 1: one of them is better)")
    _tuned_file_arguments(optimum, out="check folder (default: runs/<config name>-optimum); writes optimum.md, "
                          "optimum.csv and the re-score runs")
    optimum.add_argument("--factor", type=float, default=3.0, metavar="F",
                         help="neighbours lr / F and lr · F (default: 3)")
    optimum.add_argument("--strategies", type=_names, metavar="A,B", help="only these tuned labels")
    optimum.add_argument("--mem-sizes", type=_sizes, metavar="M,N", help="only these tuned memory sizes")
    optimum.add_argument("--force", action="store_true", help="write over a finished table in --out")
    optimum.add_argument("overrides", **overrides)
    walk = sub.add_parser("walk-bounds", help="add the bound walks a tune now ends every study with to a tuned.yaml "
                          "written before them: each value at a bound of its space walked past it on validation")
    _tuned_file_arguments(walk, out="folder of the walked tuned.yaml and its runs (default: runs/<config name>-walk)")
    walk.add_argument("--rescore", action="store_true", help="walk a study whose tuned values score otherwise "
                      "here than its recorded value from the re-score (kept beside the tune's) instead of refusing it")
    walk.add_argument("overrides", **overrides)
    prepare = sub.add_parser("prepare", help="fetch the weights and data a run or sweep config needs "
                             "(on a machine with network), or say what is missing", formatter_class=raw)
    prepare.add_argument("--config", type=Path, help="YAML run or sweep config (default: the embedded comparison)")
    prepare.add_argument("--check", action="store_true", help="only report what is present and missing; download nothing")
    prepare.add_argument("overrides", **overrides)
    report = sub.add_parser("report", help="tables and figures from a sweep or run folder")
    report.add_argument("dir", type=Path)
    report.add_argument("--out", type=Path, help="report folder (default: DIR/report)")
    listing = sub.add_parser("list", help="registered scenarios, strategies and models, with their defaults")
    listing.add_argument("--spaces", action="store_true", help="also each strategy's search space for tune")
    return parser, sub.choices


def _tuned_file_arguments(parser: argparse.ArgumentParser, *, out: str) -> None:
    """``--config``, ``--tuned`` and ``--out`` of a command that works on a tune's tuned.yaml."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="the sweep config that was tuned "
                        "(default: the embedded comparison)")
    parser.add_argument("--tuned", type=Path, metavar="FILE", help="its tuned.yaml (default: the config's tuned key)")
    parser.add_argument("--out", type=Path, metavar="DIR", help=out)


def _names(text: str) -> list[str]:
    """``"ce,der"`` -> ``["ce", "der"]`` (a comma list: a space list would swallow key=value overrides)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _sizes(text: str) -> list[int]:
    """``"20,200"`` -> ``[20, 200]``."""
    try:
        sizes = [int(size) for size in _names(text)]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected comma-separated memory sizes (integers), got {text!r}") from None
    return sizes


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; a command's options and ``key=value`` overrides may interleave (argparse's
    intermixed parsing, which subparsers do not support, so each command's parser runs it)."""
    parser, commands = _parser()
    if argv and argv[0] in commands:
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


def _keys_help(*, sweep: bool) -> str:
    """Every config key with the default that applies here, for ``--help``."""
    from avalanche_clip.pipeline.config import RUN_KEYS, SWEEP_KEYS

    embedded = _embedded(sweep=sweep)
    lines = [textwrap.fill(f"without --config: the embedded comparison{'' if sweep else ' (its GCL run)'}: "
                           + ", ".join(f"{k}={v}" for k, v in embedded.items()), 100,
                           subsequent_indent="  "),
             "", "config keys (in --config or as key=value) and their defaults when a config omits them:"]
    for key, (default, meaning) in {**RUN_KEYS, **(SWEEP_KEYS if sweep else {})}.items():
        shown = "null" if default is None else str(default)
        if key == "pretrained":
            shown, meaning = "model's own", f"{meaning}; {_default_tags()}"
        elif key == "threads":
            from avalanche_clip.common.threads import local_cores

            cores = local_cores()
            shown = "1 (auto) or cores / --workers" if sweep else f"{cores} (cores here)"
        lines.append(f"  {key:<17} {shown:<22} {meaning}")
    return "\n".join(lines)


def _default_tags() -> str:
    """``"effnet-lite0-clip: imagenet, tiny-clip: none, ..."`` (offline configs and examples)."""
    from avalanche_clip.models import OFFLINE_MODELS
    from avalanche_clip.models.factory import default_pretrained

    names = [*sorted(OFFLINE_MODELS), "ViT-B-16", "ViT-B-16-quickgelu"]
    return ", ".join(f"{name}: {default_pretrained(name) or 'none'}" for name in names)


def _embedded(*, sweep: bool) -> dict[str, Any]:
    """The embedded comparison (``run``: its GCL run at memory 100, with GCL's tuned values);
    its ``tuned`` file lies beside it in the package."""
    from avalanche_clip.pipeline.config import load_yaml

    source = load_yaml(DEFAULT_CONFIG)
    if source.get("tuned"):
        source["tuned"] = str(DEFAULT_CONFIG.parent / source["tuned"])
    if sweep:
        return source
    return _run_of_sweep(source, _EMBEDDED_RUN, source.get("tuned"), strict=False)


def _run_of_sweep(source: dict[str, Any], parsed: dict[str, Any], tuned: str | Path | None, *,
                  strict: bool) -> dict[str, Any]:
    """One run of the sweep config ``source``: its shared keys, the run keys of ``parsed``
    (strategy, mem_size, seed, ...), and the options its sweep gives that strategy (a variant's
    label runs its registered strategy with the variant's options; ``tuned`` values are checked
    as a sweep checks them). ``strict``: a strategy outside the sweep is an error (tuned values
    asked for on the command line), else it runs with its own defaults."""
    from avalanche_clip.pipeline.config import RUN_KEYS, merge, resolve_config
    from avalanche_clip.pipeline.sweep_schema import parse_sweep_config
    from avalanche_clip.pipeline.tuned_values import load_tuned

    run = merge({k: v for k, v in source.items() if k not in (*_SWEEP_ONLY, "tune", "tuned", "tuned_check")}, parsed)
    label = run.get("strategy", RUN_KEYS["strategy"][0])
    mem_size = run.get("mem_size", RUN_KEYS["mem_size"][0])
    if isinstance(mem_size, bool) or not isinstance(mem_size, int):
        mem_size = 0  # any tuned size will do: parsing the run refuses this mem_size next
    swept = parse_sweep_config(resolve_config([source], sweep=True))
    values = load_tuned(swept, tuned) if tuned else None
    if values is not None:  # the values tuned nearest this run's memory, as its sweep applies them
        swept = values.apply(swept, mem_size)
    entries = {entry_label: (strategy, options) for entry_label, strategy, options in swept.entries}
    if label in entries:
        strategy, options = entries[label]
        run["strategy"] = strategy
        if strategy != label:
            run.setdefault("strategy_label", label)
        tuned_at = values.tuned_at(label, strategy, mem_size) if values is not None else None
        if tuned_at is not None:
            run["tuned_at_mem_size"] = tuned_at
        given = (parsed.get("strategy_options") or {}).get(strategy, {})
        if options or given:  # the command line's own options win over the sweep's
            run["strategy_options"] = {**(run.get("strategy_options") or {}), strategy: {**options, **given}}
    elif tuned and strict:
        raise ValueError(f"strategy {label!r} is not among the sweep config's strategies "
                         f"{sorted(entries)}: its tuned values are unknown")
    return run


def _config(path: Path | None, overrides: Sequence[str], *, sweep: bool | None,
            tuned: Path | None = None) -> dict[str, Any]:
    """The resolved config; ``sweep=None`` takes a run or a sweep config, whichever it is.
    A run (``sweep=False``) of a sweep config, or with ``tuned``, is one run of that sweep."""
    from avalanche_clip.pipeline.config import (
        ConfigError,
        load_config,
        parse_overrides,
        resolve_config,
    )

    parsed = parse_overrides(overrides)
    if path is None:
        if sweep is not False:
            return resolve_config([_embedded(sweep=True), parsed], sweep=True)
        embedded = _embedded(sweep=True)  # a run of it: the options and tuned values its sweep gives
        run = _run_of_sweep(embedded, {**_EMBEDDED_RUN, **parsed}, tuned or embedded.get("tuned"),
                            strict=bool(tuned))
        return resolve_config([run], sweep=False)
    source = load_config(path)
    if sweep is False and (tuned or any(key in source for key in _SWEEP_ONLY)):
        if "strategy" not in parsed and "strategy" not in source:
            raise ConfigError(f"{path} is a sweep config (strategies, mem_sizes and seeds belong to sweep "
                              "configs): run all of it with avalanche-clip sweep, or one of its runs with "
                              "strategy=NAME mem_size=M seed=S")
        run = _run_of_sweep(source, parsed, tuned or source.get("tuned"), strict=bool(tuned))
        return resolve_config([run], sweep=False)
    if sweep is None:
        sweep = any(key in source or key in parsed for key in _SWEEP_ONLY)
    return resolve_config([source, parsed], sweep=sweep)


def _prepare_command(args: argparse.Namespace) -> str:
    """The ``prepare`` command for the config and overrides of ``args``."""
    parts = ["avalanche-clip", "prepare"]
    if args.config:
        parts += ["--config", str(args.config)]
    return shlex.join(parts + list(args.overrides))


def _run(args: argparse.Namespace) -> int:
    from avalanche_clip.common.threads import apply_threads
    from avalanche_clip.pipeline.config_parse import parse_run_config
    from avalanche_clip.pipeline.run import execute_run
    from avalanche_clip.training.distributed import init_from_env, is_main, launched, shutdown

    # parsed before this process changes: threads must be valid
    config = parse_run_config(_config(args.config, args.overrides, sweep=False, tuned=args.tuned))
    out = args.out or Path("runs") / config.run_id
    apply_threads(config.threads)
    if launched():  # under torchrun: join the process group; CUDA runs take cuda:<local rank>
        config = config.replace(device=init_from_env(config.device))
    try:
        records = execute_run(config, out, resume=args.resume)
        main_process = is_main()  # asked before leaving the process group, where every rank is 0
    finally:
        shutdown()
    final = records[-1]
    if main_process:
        print(f"{final['run_id']}: final accuracy {100 * final['stream_accuracy']:.1f}% "
              f"after {final['experience'] + 1} experiences; records in {out / 'results.jsonl'}")
    return 0


def _refuse_torchrun(command: str) -> None:
    from avalanche_clip.training.distributed import launched

    if launched():
        raise ValueError(f"{command} under torchrun: torchrun runs one run on several processes "
                         "(avalanche-clip run); sweep --workers N runs independent runs in parallel")


def _sweep(args: argparse.Namespace) -> int:
    from avalanche_clip.pipeline.sweep import run_sweep
    from avalanche_clip.pipeline.sweep_schema import parse_sweep_config

    _refuse_torchrun("sweep")

    from avalanche_clip.pipeline.parallel_sweep import WORKERS_ENV, parse_workers

    if args.workers is not None:
        workers = parse_workers(args.workers)
    else:
        workers = parse_workers(os.environ.get(WORKERS_ENV, "auto"), source=WORKERS_ENV)
    if args.ray_address:  # before any work: Ray is an optional dependency
        from avalanche_clip.pipeline.ray_pool import MissingRayError, import_ray

        if args.workers is None or workers == "auto":  # the environment's default is this machine's
            raise ValueError("--ray-address needs --workers N, the runs to have in flight on the "
                             "cluster at a time (auto counts this machine's cores only)")
        try:
            import_ray()
        except MissingRayError as err:
            raise ValueError(str(err)) from None
    config = parse_sweep_config(_config(args.config, args.overrides, sweep=True))  # parsed once
    if args.tuned:
        config = config.replace(tuned=str(args.tuned.expanduser().resolve()))
    name = args.config.stem if args.config else "default"
    out = args.out or Path("runs") / name
    result = run_sweep(config, out, progress=config.shared["progress"], workers=workers,
                       ray_address=args.ray_address)
    report = result["report"]
    if report is not None:
        print(report["table"])
    for line in result["skipped"]:
        print(f"skipped: {line}")
    print(f"\n{result['runs']} runs in {out}; report: {report['report_md'] if report else 'none (no run has records)'}")
    if result["stopped"]:
        print(f"sweep stopped early: {result['stopped']}", file=sys.stderr)
    if result["failures"]:
        print(f"{len(result['failures'])} run(s) failed; errors and tracebacks in "
              f"{out / 'failures.jsonl'}", file=sys.stderr)
    return 1 if result["failures"] else 0


def _tune(args: argparse.Namespace) -> int:
    from avalanche_clip.common.threads import apply_threads
    from avalanche_clip.pipeline.sweep_schema import parse_sweep_config
    from avalanche_clip.pipeline.tune import run_tune

    _refuse_torchrun("tune")

    config = parse_sweep_config(_config(args.config, args.overrides, sweep=True))  # parsed once
    name = args.config.stem if args.config else "default"
    out = args.out or Path("runs") / f"{name}-tune"
    apply_threads(config.shared.get("threads"))
    result = run_tune(config, out, trials=args.trials, storage=args.storage, progress=config.shared["progress"])
    for label, studies in result["strategies"].items():
        for mem_size, tuned in studies.items():
            values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in tuned.params.items())
            bounds = "".join(f"  [{b['param']} at {b['bound']} bound]" for b in tuned.at_bound)
            search = tuned.lr_search or {}
            if search and search["lr"] != search["start_lr"]:  # the line search moved the sampler's lr
                bounds += f"  [lr {search['start_lr']:.3g} -> {search['lr']:.3g} by the line search]"
            bounds += "".join(f"  [{w['param']} {w['start_value']:.3g} -> {w['value']:.3g} by the bound walk, "
                              f"{w['stopped']}]" for w in tuned.bound_walks)
            print(f"{label:<16} m={mem_size:<4} validation accuracy {100 * tuned.value:5.1f}% "
                  f"± {100 * tuned.standard_error:.1f} (SE, n={sum(tuned.validation_sizes)})  "
                  f"({tuned.trials} trials, {tuned.wall_time_s:.0f} s)  {values or 'nothing to tune'}{bounds}")
    print(f"\ntuned values in {result['tuned']} ({result['wall_time_s']:.0f} s); apply with "
          f"avalanche-clip sweep --config {args.config or '<config>'} --tuned {result['tuned']}")
    return 0


def _tuned_command(args: argparse.Namespace, command: str, purpose: str, suffix: str) -> tuple[Any, Path, Path]:
    """The sweep config (parsed once), tuned.yaml and output folder of ``command``, a command on a
    tune's tuned.yaml (``--tuned``, else the config's ``tuned`` key; ``--out``, else
    ``runs/<config name>-<suffix>``); refused under torchrun."""
    from avalanche_clip.pipeline.config import ConfigError
    from avalanche_clip.pipeline.sweep_schema import parse_sweep_config

    _refuse_torchrun(command)
    config = parse_sweep_config(_config(args.config, args.overrides, sweep=True))
    tuned = args.tuned or (Path(config.tuned) if config.tuned else None)
    if tuned is None:
        raise ConfigError(f"{command} needs the tuned.yaml {purpose}: pass --tuned FILE (the config has no tuned key)")
    return config, tuned, args.out or Path("runs") / f"{args.config.stem if args.config else 'default'}-{suffix}"


def _apply_tune_threads(config: Any, tuned: Path) -> None:
    """Scores reproduce under the tune's torch thread count only: apply the count its studies
    record, unless the config sets one."""
    from avalanche_clip.common.threads import apply_threads
    from avalanche_clip.pipeline.tune_threads import tuned_threads
    from avalanche_clip.pipeline.tuned_values import read_tuned

    threads = config.shared.get("threads")
    apply_threads(tuned_threads(read_tuned(tuned)) if threads is None else threads)


def _check_optimum(args: argparse.Namespace) -> int:
    from avalanche_clip.pipeline.tune_optimum import OPTIMUM, check_factor, check_optimum
    from avalanche_clip.pipeline.tune_optimum_table import (
        optimum_markdown,
        refuse_finished,
        write_optimum,
    )

    config, tuned, out = _tuned_command(args, "check-optimum", "to check", "optimum")
    check_factor(args.factor)
    refuse_finished(out, force=args.force)  # before any run
    _apply_tune_threads(config, tuned)
    checks = check_optimum(config, tuned, out, factor=args.factor, strategies=args.strategies,
                           mem_sizes=args.mem_sizes, progress=config.shared["progress"])
    markdown, table = write_optimum(checks, out, args.factor)
    print(optimum_markdown(checks, args.factor))
    print(f"table in {markdown} and {table}")
    return 1 if any(check.verdict != OPTIMUM for check in checks) else 0


def _walk_bounds(args: argparse.Namespace) -> int:
    from avalanche_clip.pipeline.tune_walk_file import walk_tuned

    config, tuned, out = _tuned_command(args, "walk-bounds", "to walk", "walk")
    _apply_tune_threads(config, tuned)
    result = walk_tuned(config, tuned, out, rescore=args.rescore, progress=config.shared["progress"])
    for label, mem_size, walks in result["walked"]:
        for walk in walks:
            print(f"{label:<16} m={mem_size:<4} {walk['param']} {walk['start_value']:.4g} -> {walk['value']:.4g} "
                  f"(validation {100 * walk['start_score']:.1f}% -> {100 * walk['score']:.1f}%, {walk['stopped']})")
    print(f"\nwalked values in {result['tuned']} ({result['wall_time_s']:.0f} s; {len(result['walked'])} studies "
          "walked)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from avalanche_clip.pipeline.prepare_assets import prepare_assets

    config = _config(args.config, args.overrides, sweep=None)
    return prepare_assets(config, download=not args.check, printer=print)


def _report(args: argparse.Namespace) -> int:
    from avalanche_clip.reporting import write_report
    from avalanche_clip.strategies import strategy_roles

    report = write_report(args.dir, args.out, roles=strategy_roles())
    print(report["table"])
    print(f"\nreport: {report['report_md']}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from avalanche_clip.models import OFFLINE_MODELS
    from avalanche_clip.models.factory import default_pretrained
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
        if getattr(args, "spaces", False):
            from avalanche_clip.strategies.registry import search_space
            from avalanche_clip.strategies.spaces import describe

            space = search_space(name, tune_epochs=True)
            for key, spec in space.items():
                note = " (only with tune.tune_epochs: true)" if key == "train_epochs" else ""
                print(f"  {'':<10}   search {key}: {describe(spec)}{note}")
            if not space:
                print(f"  {'':<10}   search: nothing (never trains)")
    examples = ", ".join(f"{m}: {default_pretrained(m)}" for m in ("ViT-B-16", "ViT-B-16-quickgelu"))
    print("\nmodels: any open_clip architecture (open_clip.list_models()) with its pretrained tags, "
          "or a local checkpoint file. Without a pretrained line a run loads the model's default: "
          "for an open_clip architecture the first tag open_clip lists whose activation matches it "
          f"({examples}), none if it has no tags; offline configs:")
    for name, tags in sorted(OFFLINE_MODELS.items()):
        default = default_pretrained(name)
        listed = ", ".join(tags) if tags else "none (random init)"
        print(f"  {name:<22} default pretrained: {default or 'none (random init)'}; tags: {listed}"
              f"  ({OFFLINE_DESCRIPTIONS.get(name, '')})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input or missing assets, before any training)."""
    from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

    pin_cpu_kernels()  # before any tensor operation: records then do not depend on the CPU model
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    handlers = {"run": _run, "sweep": _sweep, "tune": _tune, "check-optimum": _check_optimum,
                "walk-bounds": _walk_bounds,
                "prepare": _prepare, "report": _report, "list": _list}
    from avalanche_clip.assets import MissingAssetError
    from avalanche_clip.common.errors import AvalancheClipError, clip_message
    from avalanche_clip.common.registry import UnknownNameError

    try:
        return handlers[args.command](args)
    except MissingAssetError as err:
        err.prepare_command = _prepare_command(args)
        print(f"avalanche-clip {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (AvalancheClipError, ValueError, FileNotFoundError, UnknownNameError, TypeError) as err:
        print(f"avalanche-clip {args.command}: error: {clip_message(str(err))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
