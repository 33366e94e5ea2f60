"""Wall time of a whole sweep into a fresh folder, as ``avalanche-clip sweep`` runs it.

    python benchmarks/time_sweep.py --out /tmp/sweep_default                 # the embedded default
    python benchmarks/time_sweep.py --config experiments/cifar10_proxy.yaml \\
        --tuned experiments/results/cifar10_proxy_rerun_tune/tuned.yaml --out /tmp/sweep_cifar10 \\
        data_root=/work/shared/data/cifar10

The sweep runs through the command line's own entry point (CPU kernels pinned), so the time is
what a user waits; ``--workers`` is passed on (default: the command line's, ``auto``: one
one-thread worker process per core for the default's CPU runs; ``--workers 1``: one run after
another in this process on torch's threads). Printed: the number of runs, the total, the setup
before the first run starts (imports, planning, data fingerprints, asset checks, the worker
pool), the seconds a run after setup (``(total - setup) / runs``: what the sweep's throughput
gives each run), the median of the runs' own recorded wall times, and the load average at the
start and at the end (a loaded machine's numbers are not an idle one's). ``--out`` must not exist
or be empty: a folder holding finished runs would be skipped, not timed. ``--cold-cache`` puts
the feature cache in ``<out>/cache`` (encoding every image once is then part of the time);
otherwise the config's cache (usually warm) is used. ``--json`` also writes the numbers to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import avalanche_clip.pipeline.sweep_runs as sweep_runs
from avalanche_clip.cli import main as cli_main
from avalanche_clip.pipeline.process_pool import ProcessPool
from avalanche_clip.pipeline.run_loop import read_records
from avalanche_clip.pipeline.sweep_runs import SweepLedger


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="sweep config (default: the embedded comparison)")
    parser.add_argument("--tuned", help="tuned.yaml to apply, as sweep --tuned")
    parser.add_argument("--out", required=True, help="a fresh sweep folder")
    parser.add_argument("--cold-cache", action="store_true", help="feature cache in <out>/cache")
    parser.add_argument("--workers", help="sweep --workers (default: the command line's, auto)")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out {out} is not empty: its finished runs would be skipped, not timed")

    first_start: list[float] = []
    ran: list[str] = []

    def noting_start(function, after=False):  # type: ignore[no-untyped-def]
        def noted(*a, **k):  # type: ignore[no-untyped-def]
            if not after:
                first_start[:1] = first_start[:1] or [time.perf_counter()]
            result = function(*a, **k)
            if after:  # the pool's first submit starts the forkserver and the workers: setup
                first_start[:1] = first_start[:1] or [time.perf_counter()]
            return result
        return noted

    def noting_outcome(ledger, run, outcome):  # type: ignore[no-untyped-def]
        if outcome.status == "ran":
            ran.append(run.run_id)
        return record(ledger, run, outcome)

    command = ["sweep", "--out", str(out), "progress=false", *args.overrides]
    command += ["--config", args.config] if args.config else []
    command += ["--tuned", args.tuned] if args.tuned else []
    command += ["--workers", args.workers] if args.workers else []
    command += [f"cache_dir={out / 'cache'}"] if args.cold_cache else []
    load_before = os.getloadavg()[0]
    # the first run starts: in this process (a serial sweep) or handed to a worker (a pool)
    run_planned, submit, record = sweep_runs.run_planned, ProcessPool.submit, SweepLedger.record
    sweep_runs.run_planned = noting_start(run_planned)
    ProcessPool.submit = noting_start(submit, after=True)
    SweepLedger.record = noting_outcome
    started = time.perf_counter()
    try:
        code = cli_main(command)
    finally:
        sweep_runs.run_planned, ProcessPool.submit, SweepLedger.record = run_planned, submit, record
    total = time.perf_counter() - started
    if code != 0 or not ran:
        print(f"the sweep exited with {code} after {len(ran)} runs", file=sys.stderr)
        raise SystemExit(code or 1)
    setup = first_start[0] - started
    recorded = [read_records(out / "runs" / run_id / "results.jsonl")[-1]["wall_time_s"] for run_id in ran]
    result = {
        "runs": len(ran), "total_s": total, "setup_s": setup, "per_run_s": (total - setup) / len(ran),
        "median_run_s": statistics.median(recorded), "workers": args.workers or "the command line's default",
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    print(f"\n{' '.join(command)}\n")
    print("| runs | total | setup | a run after setup | median of the runs' own times | load average (start, end) |")
    print("|---:|---:|---:|---:|---:|---|")
    print(f"| {len(ran)} | {total / 60:.1f} min ({total:.0f} s) | {setup:.1f} s | "
          f"{result['per_run_s']:.2f} s | {result['median_run_s']:.2f} s | "
          f"{load_before:.1f}, {result['load_after']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
