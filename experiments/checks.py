"""The fair-comparison checks on a finished sweep's ``report/summary.csv`` (mean ± std over seeds).

    python experiments/checks.py experiments/results/cifar10_proxy_rerun experiments/results/pacs_proxy_rerun

Prints, per scenario: whether joint training is at or above every continual method in final
accuracy; whether each memory method is not worse at a larger memory beyond one standard
deviation; whether CE with memory is not below CE without; and how each method compares with the
zero-shot floor. (Equal steps and shared exemplars are checked record by record in the report's
*Protocol* section.)
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

JOINT = ("joint", "joint-converged")
NEVER_TRAINS = ("zero-shot",)


def read_summary(folder: Path) -> dict[str, dict[tuple[str, int], tuple[float, float]]]:
    """``{scenario: {(strategy, memory): (mean final accuracy %, std)}}``."""
    table: dict[str, dict[tuple[str, int], tuple[float, float]]] = defaultdict(dict)
    with open(folder / "report" / "summary.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            std = float(row["final_acc_pct_std"] or 0.0)
            table[row["scenario"]][(row["strategy"], int(row["mem_size"]))] = (float(row["final_acc_pct_mean"]), std)
    return table


def check(results: dict[tuple[str, int], tuple[float, float]]) -> list[str]:
    lines = []
    continual = {key: value for key, value in results.items() if key[0] not in (*JOINT, *NEVER_TRAINS)}
    best_key = max(continual, key=lambda key: continual[key][0])
    for joint in JOINT:
        bound = [value for key, value in results.items() if key[0] == joint]
        if bound:
            ok = bound[0][0] >= continual[best_key][0]
            lines.append(f"{'ok  ' if ok else 'FAIL'} {joint} {bound[0][0]:.1f} vs best continual "
                         f"{best_key[0]}@{best_key[1]} {continual[best_key][0]:.1f}")
    by_method: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for (strategy, memory), (mean, std) in continual.items():
        by_method[strategy].append((memory, mean, std))
    for strategy, points in sorted(by_method.items()):
        points.sort()
        drops = [f"{m0}→{m1}: {a0:.1f}→{a1:.1f} (std {s0:.1f}/{s1:.1f})"
                 for (m0, a0, s0), (m1, a1, s1) in pairwise(points) if a1 < a0 - max(s0, s1)]
        if len(points) > 1:
            lines.append(f"{'FAIL' if drops else 'ok  '} {strategy}: not worse at a larger memory beyond one std"
                         + (f" — {'; '.join(drops)}" if drops else ""))
    zero_shot = results.get(("zero-shot", 0), (float("nan"), 0.0))[0]
    below = [f"{s}@{m} {v[0]:.1f}" for (s, m), v in sorted(continual.items()) if v[0] < zero_shot]
    lines.append(f"zero-shot floor {zero_shot:.1f}; below it: {', '.join(below) or 'none'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="sweep folders with report/summary.csv")
    for folder in parser.parse_args().folders:
        for scenario, results in read_summary(folder).items():
            print(f"== {folder} · {scenario}")
            print("\n".join(check(results)))


if __name__ == "__main__":
    main()
