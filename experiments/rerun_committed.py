"""Re-run committed runs at the current commit and require records identical to the committed ones.

    python experiments/rerun_committed.py                                  # a sample of the default
    python experiments/rerun_committed.py experiments/results/cifar10_proxy_rerun --sample 4
    python experiments/rerun_committed.py experiments/results/default --runs digits__co2l__m200__s1
    python experiments/rerun_committed.py DIR --all

Each committed run folder (``DIR/runs/<run_id>/``) holds the resolved ``config.yaml`` it ran with
and its ``results.jsonl``. This script runs ``avalanche-clip run --config <that config.yaml>``
into a temporary folder and compares every record field by field, except ``wall_time_s``, the one
field allowed to differ. A refactor that moves any number of a committed table fails here, so the
tables cannot go stale silently. The sample is deterministic: the runs are sorted and every
strategy's runs are taken in turn (``--sample N`` runs in all, at least one per strategy while
N allows), so the same command checks the same runs.

The process pins its CPU kernels before any tensor operation, as the command line does
(``avalanche_clip.common.cpu_kernels.pin_cpu_kernels``): committed records are those of pinned kernels.
Exit code 0 when every compared record is identical, 1 otherwise (the differing fields are
printed), 2 for bad arguments.

``--against DIR`` re-runs nothing: it compares the records of a sweep already run into ``DIR``
(e.g. by ``benchmarks/time_sweep.py``) with the committed ones, run by run, for every committed
run (all of them must be there).

After a deliberate change of the numerics (say so in the commit), ``--update`` writes the re-run
records over the committed ``results.jsonl`` of the runs that differ (their ``config.yaml`` stays);
then ``avalanche-clip report DIR`` rewrites the folder's tables and figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from avalanche_clip.cli import main as cli_main
from avalanche_clip.common.cpu_kernels import pin_cpu_kernels
from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.pipeline.run_loop import read_records as read_run_records

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "default"
IGNORED_FIELDS = ("wall_time_s",)


def committed_runs(results: Path) -> list[Path]:
    """The run folders of a committed sweep, sorted by run id."""
    runs = sorted(p for p in (results / "runs").glob("*") if (p / "config.yaml").is_file()
                  and (p / "results.jsonl").is_file())
    if not runs:
        raise SystemExit(f"rerun_committed: {results} holds no runs/<run_id>/config.yaml with results.jsonl")
    return runs


def _strategy_of(run: Path) -> str:
    config = read_yaml((run / "config.yaml").read_text())
    return str(config.get("strategy_label") or config.get("strategy"))


def sample_runs(runs: list[Path], count: int) -> list[Path]:
    """``count`` runs, taking every strategy's runs in turn (round-robin over sorted strategies)."""
    by_strategy: dict[str, list[Path]] = defaultdict(list)
    for run in runs:
        by_strategy[_strategy_of(run)].append(run)
    queues = [by_strategy[name] for name in sorted(by_strategy)]
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q) and len(chosen) < count)
        depth += 1
    return chosen


def read_records(path: Path) -> list[dict[str, Any]]:
    """A run's records without the fields allowed to differ."""
    return [{k: v for k, v in r.items() if k not in IGNORED_FIELDS} for r in read_run_records(path)]


def differences(committed: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences between two record lists (empty when identical)."""
    if len(committed) != len(fresh):
        return [f"{len(committed)} committed records, {len(fresh)} re-run"]
    found = []
    for i, (old, new) in enumerate(zip(committed, fresh, strict=True)):
        for key in sorted(set(old) | set(new)):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                found.append(f"record {i} {key}: committed {old.get(key, '<absent>')!r}, "
                             f"re-run {new.get(key, '<absent>')!r}")
    return found


def rerun(run: Path, overrides: list[str], workdir: Path) -> tuple[int, list[str], str]:
    """Re-run one committed run: (exit code, differences, captured stderr tail)."""
    out = workdir / run.name
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = cli_main(["run", "--config", str(run / "config.yaml"), "--out", str(out),
                         "progress=false", *overrides])
    if code != 0:
        return code, [], stderr.getvalue()[-2000:]
    return 0, differences(read_records(run / "results.jsonl"), read_records(out / "results.jsonl")), ""


def compare_sweep(results: Path, fresh: Path) -> int:
    """Compare every committed run of ``results`` with the run of the same id in the sweep
    folder ``fresh``; 0 when every record is identical (module docstring)."""
    runs = committed_runs(results)
    failed = 0
    for run in runs:
        other = fresh / "runs" / run.name / "results.jsonl"
        if not other.is_file():
            failed += 1
            print(f"MISSING   {run.name}: no {other}")
            continue
        diffs = differences(read_records(run / "results.jsonl"), read_records(other))
        if diffs:
            failed += 1
            print(f"DIFFERENT {results.name}/{run.name}:")
            print("\n".join(f"    {d}" for d in diffs[:20]))
    print(f"{failed} of {len(runs)} runs differ or are missing" if failed
          else f"all {len(runs)} runs' records are identical")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", type=Path, default=[DEFAULT_RESULTS],
                        help="committed sweep folders (default: experiments/results/default)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sample", type=int, default=6, help="runs per folder, spread over strategies (default 6)")
    which.add_argument("--runs", nargs="+", metavar="RUN_ID", help="these run ids")
    which.add_argument("--all", action="store_true", help="every run")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value",
                        help="overrides for every re-run, e.g. data_root=... where the data lives elsewhere")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="compare the runs of this finished sweep folder instead of re-running (one results folder)")
    parser.add_argument("--update", action="store_true",
                        help="write the re-run records over the committed ones that differ (module docstring)")
    args = parser.parse_args(argv)
    pin_cpu_kernels()  # before anything computes, as the command line does (module docstring)
    if args.sample < 1:
        parser.error(f"--sample must be >= 1, got {args.sample}")
    if args.against is not None:
        if len(args.results) != 1 or args.update:
            parser.error("--against compares one results folder and updates nothing")
        return compare_sweep(args.results[0], args.against)

    failed = 0
    with tempfile.TemporaryDirectory(prefix="rerun-committed-") as tmp:
        for results in args.results:
            runs = committed_runs(results)
            if args.runs:
                known = {r.name: r for r in runs}
                missing = [r for r in args.runs if r not in known]
                if missing:
                    parser.error(f"no committed run {missing[0]!r} in {results}")
                runs = [known[r] for r in args.runs]
            elif not args.all:
                runs = sample_runs(runs, args.sample)
            for run in runs:
                code, diffs, err = rerun(run, args.set, Path(tmp))
                if code != 0:
                    failed += 1
                    print(f"FAILED    {results.name}/{run.name}: exit {code}\n{err}")
                elif diffs:
                    failed += 1
                    print(f"DIFFERENT {results.name}/{run.name}:")
                    print("\n".join(f"    {d}" for d in diffs[:20]))
                    if args.update:
                        shutil.copyfile(Path(tmp) / run.name / "results.jsonl", run / "results.jsonl")
                        print(f"    updated {run / 'results.jsonl'}")
                else:
                    print(f"identical {results.name}/{run.name}")
                sys.stdout.flush()
    print(f"{failed} of the re-run runs differ or failed" if failed else "every re-run record is identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
