"""How much does a tune's result depend on its sampler seed? Tuning noise from repeated tunes.

    python experiments/tuning_noise.py                 # print the tables for the default's tunes
    python experiments/tuning_noise.py --write         # write them between the markers of experiments/README.md
    python experiments/tuning_noise.py --check         # exit 1 if the README differs (a test runs this)
    python experiments/tuning_noise.py A.yaml B.yaml   # any tunes of one config

Every ``tuned.yaml`` given must come from ``avalanche-clip tune`` with the same config and tune
settings except ``tune.sampler_seed`` (the Optuna sampler's seed; the validation split, the
trials' runs and the line search are otherwise the same). For each (strategy, memory size) tuned
in all of them, with ``s_k`` the best validation accuracy of tune ``k`` (after its learning-rate
line search) and ``SE`` the standard error of the first tune's score (binomial, over its
validation runs, what ``tune`` prints):

* the **spread** ``max_k s_k - min_k s_k``: how far two equally-honest tunes of the same method
  land apart, which the per-seed intervals of a comparison do not contain;
* per strategy, the mean and largest spread over its memory sizes, against the mean ``SE``.

A spread well above ``SE`` says the trial budget, not the validation split, limits how well the
method is tuned; comparisons between methods whose gap is below their spread are not settled by
more seeds.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from avalanche_clip.pipeline.tuned_values import read_tuned
from avalanche_clip.reporting.readme_markers import replace_between

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TUNES = (ROOT / "avalanche_clip" / "defaults" / "comparison.tuned.yaml",
                 ROOT / "experiments" / "results" / "default_tune_seed1" / "tuned.yaml")
README = ROOT / "experiments" / "README.md"
MARKER = "tuning-noise"  # the block <!-- tuning-noise:begin --> ... <!-- tuning-noise:end -->
#: Settings that may differ between the tunes compared: the sampler's seed and where its studies live.
FREE_SETTINGS = ("sampler_seed", "storage")


class TuningNoiseError(ValueError):
    """Tunes that cannot be compared: fewer than two, or tuned with other settings."""


def load_tunes(paths: list[Path]) -> list[dict]:
    """The parsed files, refused unless their settings agree outside :data:`FREE_SETTINGS`."""
    if len(paths) < 2:
        raise TuningNoiseError(f"need at least two tuned.yaml files to compare, got {len(paths)}")
    tunes = [read_tuned(p) for p in paths]
    first = {k: v for k, v in tunes[0]["settings"].items() if k not in FREE_SETTINGS}
    for path, tune in zip(paths[1:], tunes[1:], strict=True):
        other = {k: v for k, v in tune["settings"].items() if k not in FREE_SETTINGS}
        differing = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if differing:
            raise TuningNoiseError(f"{path} was tuned with other settings than {paths[0]}: {differing} "
                                   f"differ (only {list(FREE_SETTINGS)} may)")
    return tunes


def study_rows(tunes: list[dict]) -> list[dict]:
    """One row per (strategy, memory size) tuned in every file: scores in %, spread, SE."""
    rows = []
    for label, entry in tunes[0]["strategies"].items():
        for mem_size, study in entry["by_mem_size"].items():
            others = [t["strategies"].get(label, {}).get("by_mem_size", {}).get(mem_size) for t in tunes[1:]]
            if any(o is None for o in others):
                continue
            scores = [100 * s["value"] for s in [study, *others]]
            rows.append({"strategy": label, "memory": int(mem_size), "scores": scores,
                         "spread": max(scores) - min(scores), "se": 100 * study["standard_error"],
                         "n_params": len(study["params"])})
    return rows


def strategy_rows(rows: list[dict]) -> list[dict]:
    """Per strategy: studies, parameters tuned, mean and largest spread, mean SE (all in points)."""
    out = []
    for label in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == label]
        mean_spread = sum(r["spread"] for r in mine) / len(mine)
        mean_se = sum(r["se"] for r in mine) / len(mine)
        out.append({"strategy": label, "studies": len(mine), "n_params": mine[0]["n_params"],
                    "mean_spread": mean_spread, "max_spread": max(r["spread"] for r in mine),
                    "max_at": max(mine, key=lambda r: r["spread"])["memory"],
                    "mean_se": mean_se, "ratio": mean_spread / mean_se})
    return out


def render(tunes: list[dict], names: list[str]) -> str:
    """The Markdown block: the per-strategy summary, then every study."""
    rows = study_rows(tunes)
    seeds = ", ".join(str(t["settings"].get("sampler_seed", 0)) for t in tunes)
    lines = [f"Sampler seeds {seeds} ({', '.join(names)}); validation accuracy in %, spreads and SE in points.",
             "", "| strategy | parameters | studies | mean spread | largest spread (memory) | mean SE | spread / SE |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in strategy_rows(rows):
        lines.append(f"| {s['strategy']} | {s['n_params']} | {s['studies']} | {s['mean_spread']:.1f} | "
                     f"{s['max_spread']:.1f} ({s['max_at']}) | {s['mean_se']:.1f} | {s['ratio']:.2f} |")
    overall = sum(r["spread"] for r in rows) / len(rows)
    mean_se = sum(r["se"] for r in rows) / len(rows)
    above = sum(r["spread"] > 2 * r["se"] for r in rows)
    walked = ", ".join(f"{_studies_walked(t)} (seed {t['settings'].get('sampler_seed', 0)})" for t in tunes)
    at_bound = ", ".join(f"{_studies_at_bound(t)} (seed {t['settings'].get('sampler_seed', 0)})" for t in tunes)
    lines += ["", f"Over all {len(rows)} studies the mean spread is {overall:.1f} points, "
              f"{overall / mean_se:.1f} times their mean SE ({mean_se:.1f}); "
              f"{above} of them spread by more than twice their SE. Studies whose sampler and line search "
              f"left a value within 5 % of a bound of its space, walked past it: {walked}; still at a bound "
              f"after the walk: {at_bound}.", "",
              "<details><summary>every study</summary>", "",
              "| strategy | memory | " + " | ".join(f"seed {t['settings'].get('sampler_seed', 0)}" for t in tunes)
              + " | spread | SE |", "|---|---:|" + "---:|" * len(tunes) + "---:|---:|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['memory']} | " + " | ".join(f"{v:.1f}" for v in r["scores"])
                     + f" | {r['spread']:.1f} | {r['se']:.1f} |")
    lines += ["", "</details>"]
    return "\n".join(lines)


def _studies_walked(tune: dict) -> int:
    """How many of a tune's studies ended with a bound walk (``bound_walks`` in ``tuned.yaml``)."""
    return sum(bool(study.get("bound_walks")) for entry in tune["strategies"].values()
               for study in entry["by_mem_size"].values())


def _studies_at_bound(tune: dict) -> int:
    """How many of a tune's studies hold a value at a bound (``at_bound`` in ``tuned.yaml``)."""
    return sum(bool(study.get("at_bound")) for entry in tune["strategies"].values()
               for study in entry["by_mem_size"].values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tuned", nargs="*", type=Path, help="tuned.yaml files of one config (default: the default's two)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the tables into experiments/README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if experiments/README.md differs")
    args = parser.parse_args(argv)
    paths = args.tuned or list(DEFAULT_TUNES)
    names = [str(Path(p).resolve().relative_to(ROOT)) if Path(p).resolve().is_relative_to(ROOT) else str(p)
             for p in paths]
    block = render(load_tunes(paths), names)
    if not (args.write or args.check):
        print(block)
        return 0
    current = README.read_text()
    wanted = replace_between(current, MARKER, block + "\n", README)
    if args.write:
        README.write_text(wanted)
        return 0
    if wanted != current:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                   "README.md", "tuning_noise.py"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
