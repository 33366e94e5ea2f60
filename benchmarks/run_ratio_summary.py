"""The continual / joint ratio of several ``bench_run.py --json`` files, with an interval.

One ``bench_run.py`` measurement's ratio moves by ±0.1 between identical runs on a 2-core VM,
so a target such as "≤ 1.2×" is read from many: each timed round of a measurement runs the
continual and the joint run back to back, so the round's ratio ``continual_i / joint_i`` is one
paired sample (a drift of the machine's speed affects both of its runs alike). This script pools
the rounds of every file given for a label and prints their median ratio with a 95 % bootstrap
interval (resampling rounds), beside the medians of each file as ``bench_run.py`` printed them.

    python benchmarks/bench_run.py --repeats 5 --json /tmp/after_1.json     # several times
    python benchmarks/run_ratio_summary.py after=/tmp/after_1.json,/tmp/after_2.json \\
        before=/tmp/before_1.json,/tmp/before_2.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path


def paired_ratios(paths: list[Path]) -> list[float]:
    """Every timed round's ``continual / joint`` wall-time ratio in ``paths``."""
    ratios = []
    for path in paths:
        times = json.loads(path.read_text())["times"]
        ratios += [c / j for c, j in zip(times["continual"], times["joint"], strict=True)]
    return ratios


def bootstrap_interval(values: list[float], *, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the median of ``values`` (rounds resampled with replacement)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", metavar="label=file[,file...]",
                        help="bench_run.py --json files, comma-separated, under a label")
    parser.add_argument("--target", type=float, default=1.2, help="ratio to compare with (default 1.2)")
    args = parser.parse_args(argv)
    summary = {}
    print("| code | rounds | median round ratio | 95 % interval | share of bootstrap medians ≤ target "
          "| each measurement's ratio of medians |")
    print("|---|---:|---:|---|---:|---|")
    for group in args.groups:
        label, _, files = group.partition("=")
        if not files:
            parser.error(f"expected label=file[,file...], got {group!r}")
        paths = [Path(p) for p in files.split(",")]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            parser.error(f"no such file: {', '.join(missing)}")
        ratios = paired_ratios(paths)
        low, high = bootstrap_interval(ratios)
        rng = random.Random(1)
        share = sum(statistics.median(rng.choices(ratios, k=len(ratios))) <= args.target
                    for _ in range(2000)) / 2000
        each = ", ".join(f"{json.loads(p.read_text())['ratio']:.2f}" for p in paths)
        median = statistics.median(ratios)
        print(f"| {label} | {len(ratios)} | {median:.3f} | {low:.3f}–{high:.3f} | {share:.2f} | {each} |")
        summary[label] = {"median": median, "low": low, "high": high, "share_at_or_below": share}
    return summary


if __name__ == "__main__":
    main()
