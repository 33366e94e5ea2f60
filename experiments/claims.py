"""The paper's claims, checked against the committed records of the two proxies.

    python experiments/claims.py            # print what the records give
    python experiments/claims.py --write    # write it between the markers of experiments/README.md
    python experiments/claims.py --check    # exit 1 if the README differs (the test runs this)
    python experiments/claims.py --seeds-needed   # the runs to add under the 5-seed rule

Every verdict and number of the claims table in ``experiments/README.md`` is computed here from
the records of the sweeps in :data:`CLAIM_SWEEPS` (``experiments/results/<folder>/runs/*/``
``results.jsonl``: the proxies re-run under issue 22's protocol and the embedded default); none
is typed by hand. The
same command also writes each sweep's summary table (what ``avalanche-clip report`` writes to
``report/summary.md``; ``--check`` also requires that file to match) between its markers in
``experiments/README.md``, the two ablation tables there (with forgetting against the proxy's
zero-shot runs of the same seed and data, since the ablation sweeps have none of their own; each
ablation is read against the proxy records of its own protocol), the two negatives ablations'
tables (every seen class's logits against the batch's classes, on digits against the embedded
default's records and on the CIFAR-10 proxy against the proxy's; per-seed differences with 95 %
intervals), the README's
final-accuracy overview and the tuned values of each re-run proxy's ``tuned.yaml``
(:mod:`avalanche_clip.reporting.tuned_table`), so no table of results in either README is typed
by hand.

**Values.** Per run: final accuracy (the final record's ``stream_accuracy``; iCaRL's is the
prompt head's in records with ``ncm_stream_accuracy``, its nearest-mean classifier's in older
ones), forgetting against the untrained model (:mod:`avalanche_clip.reporting.floor`; 0 for the
zero-shot model) and, in runs with ``retention_sets``, the retention drop ``D_h`` on each
held-out set ``h`` (the untrained model's zero-shot accuracy on ``h`` minus the run's after the
last experience; :mod:`avalanche_clip.reporting.sweep_facts`).
A *fall* of a method from memory ``m1`` to ``m0`` is, per seed, its value at ``m1`` minus its
value at ``m0`` (the same seed: the same class order, data and exemplar draws).

**Comparisons.** "A above B" at one memory size is the difference of their means over seeds with
a 95 % Welch interval (:mod:`avalanche_clip.reporting.welch`): *ahead* when the interval lies
above 0, *behind* when below 0, *within noise* otherwise.

**Verdicts.** A claim covers several comparisons (memory sizes, baselines). It is

- **confirmed** when every comparison is ahead;
- **partly** when some are ahead and some are not (the cell names those that are not);
- **refuted** when none is ahead and at least one is behind;
- **within noise** when every comparison is within noise.

Comparisons whose difference is below twice the larger standard deviation are listed below the
table, each proxy's line with its seed count: below 5 seeds more seeds may settle them. The
5-seed rule ("use 5 seeds where differences are within two standard deviations") gives the runs
to add: every (method,
memory) of such a comparison with fewer than :data:`MIN_SEEDS` seeds, and the seeds it lacks
(``--seeds-needed``; ``--write`` prints them too).

**Protocol.** Below the claims table and the overview, one line per proxy states its negatives
(``train_logits``), its views per image and iCaRL's score as its records give them
(:func:`~avalanche_clip.reporting.sweep_facts.protocol_text`).

Exit codes: 0, or 1 for ``--check`` when a README differs (the difference is printed).
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.reporting import final_records, load_records, summary_table, to_markdown
from avalanche_clip.reporting.floor import floor_metrics
from avalanche_clip.reporting.readme_markers import replace_between
from avalanche_clip.reporting.sweep_facts import protocol_text, retention_drops
from avalanche_clip.reporting.tuned_table import tuned_table
from avalanche_clip.reporting.welch import AHEAD, BEHIND, NOISE, Difference, welch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
EXPERIMENTS_README = ROOT / "experiments" / "README.md"
MAIN_README = ROOT / "README.md"
#: The proxies whose records the claims are checked on: (sweep folder, column title).
PROXIES: tuple[tuple[str, str], ...] = (
    ("cifar10_proxy_rerun", "CIFAR-10 (class-incremental, batch negatives, 2 views, tuned per memory)"),
    ("pacs_proxy_rerun", "PACS (domain-incremental, batch negatives, 2 views, tuned per memory)"),
)
#: Sweeps whose summary table (report/summary.md) is in experiments/README.md.
#: The sweeps the claims table checks: the two proxies and the embedded default, the one sweep
#: re-run so far under the protocol of issue 22 (one negative set, two views, tuning per memory).
CLAIM_SWEEPS: tuple[tuple[str, str], ...] = (
    *PROXIES,
    ("default", "digits (class-incremental, batch negatives, 2 views, tuned per memory)"),
    # the same sweep under a second, equally honest tune (the Optuna sampler's seed 1): do the
    # verdicts survive the tuning noise? (experiments/tuning_noise.py measures that noise)
    ("default_tune_seed1", "digits-retuned (the same sweep, tuned with sampler seed 1)"),
)
SUMMARY_SWEEPS: tuple[str, ...] = ("cifar10_proxy_rerun", "pacs_proxy_rerun", "default")
#: Tuning folders whose tuned.yaml is shown in experiments/README.md (its ``tuned <folder>`` markers).
TUNED_FOLDERS: tuple[str, ...] = ("cifar10_proxy_rerun_tune", "pacs_proxy_rerun_tune")
NAMES = {
    "zero-shot": "zero-shot", "ce": "CE", "ewc": "EWC", "icarl": "iCaRL", "der": "DER",
    "co2l": "Co2L", "foster": "FOSTER", "cassle": "CaSSLe", "gcl": "GCL", "gdro": "GDRO",
    "joint": "joint", "joint-converged": "joint-converged", "zscl": "ZSCL",
}  # fmt: skip
#: The trained baselines of the paper (never-trained zero-shot and the joint bounds are not), and
#: ZSCL, the CLIP continual-learning baseline (issue 26), where a sweep ran it.
BASELINES: tuple[str, ...] = ("ce", "ewc", "icarl", "der", "co2l", "foster", "cassle", "zscl")
FINAL, FORGETTING = "final", "forgetting"
METRIC_NAMES = {FINAL: "final acc.", FORGETTING: "forgetting"}
#: The metric of the retention drop on held-out set ``h`` is ``DROP + h``.
DROP = "retention drop on "
#: The 5-seed rule: comparisons within two standard deviations want this many seeds.
MIN_SEEDS = 5


def metric_name(metric: str) -> str:
    """How a metric is named in the list of close comparisons."""
    return METRIC_NAMES.get(metric, metric)


# ---------------------------------------------------------------------------------------------
# Values per (method, memory, seed)


@dataclass(frozen=True)
class Sweep:
    """Per-run values of one sweep: ``values[metric][(method, memory)] = {seed: value}``;
    ``protocol``: its records' protocol line (negatives, views, iCaRL's score)."""

    name: str
    values: dict[str, dict[tuple[str, int], dict[int, float]]]
    protocol: str = ""

    def memories(self, method: str) -> list[int]:
        return sorted(m for (name, m) in self.values[FINAL] if name == method)

    def has(self, method: str, memory: int) -> bool:
        return (method, memory) in self.values[FINAL]

    def sample(self, metric: str, method: str, memory: int) -> dict[int, float]:
        return self.values[metric][(method, memory)]

    def retention_sets(self) -> list[str]:
        """The held-out sets whose retention drops the records carry."""
        return sorted(metric[len(DROP):] for metric in self.values if metric.startswith(DROP))


def read_sweep(folder: Path, floor_from: Path | None = None) -> Sweep:
    """Final accuracy, forgetting against the floor and retention drops of every finished run
    under ``folder``, keyed by the run's strategy label (``gcl-reset`` and ``gcl`` apart).

    ``floor_from``: a sweep whose zero-shot runs are the floor, for a sweep without its own (an
    ablation on the same data, seeds and model: :data:`~avalanche_clip.reporting.floor.MATCH_KEYS`
    must agree, or the forgetting is missing).
    """
    records = load_records(folder)
    finals = final_records(records)
    finished = records[records["run_id"].isin(finals["run_id"])]
    if floor_from is not None:
        extra = load_records(floor_from)
        extra = extra[extra["strategy"] == "zero-shot"]
        finished = pd.concat([finished, extra], ignore_index=True)
    floor = floor_metrics(finished)
    values: dict[str, dict[tuple[str, int], dict[int, float]]] = {FINAL: {}, FORGETTING: {}}
    for _, run in finals.iterrows():
        key, seed = (str(run["strategy"]), int(run["mem_size"])), int(run["seed"])
        if seed in values[FINAL].get(key, {}):
            raise SystemExit(f"claims: {folder} holds two finished runs of {key} with seed {seed}")
        values[FINAL].setdefault(key, {})[seed] = float(run["stream_accuracy"])
        forgot = float(floor.loc[run["run_id"], "forgetting"])
        if not math.isnan(forgot):
            values[FORGETTING].setdefault(key, {})[seed] = forgot
    for name, drops in retention_drops(records).items():
        values[DROP + name] = drops
    return Sweep(folder.name, values, protocol_text(records))


# ---------------------------------------------------------------------------------------------
# Comparisons and verdicts


@dataclass(frozen=True)
class Comparison:
    """One "A above B" test; ``label`` names it in a cell (``"GCL − DER at 20"``); ``cells``: the
    (method, memory) whose runs it reads."""

    label: str
    metric: str
    difference: Difference
    cells: tuple[tuple[str, int], ...] = ()

    def text(self) -> str:
        d = self.difference
        return f"{self.label} {_pp(d.diff, sign=True)} [{_pp(d.low)}, {_pp(d.high)}]"


def _pp(value: float, sign: bool = False) -> str:
    """A difference of fractions in percentage points, one decimal, ``−`` for minus."""
    text = f"{value * 100:+.1f}" if sign else f"{value * 100:.1f}"
    if float(text) == 0:
        text = "+0.0" if sign else "0.0"
    return text.replace("-", "−")


def compare(
    sweep: Sweep, metric: str, a: tuple[str, int], b: tuple[str, int], label: str
) -> Comparison:
    """Mean of ``a``'s values minus ``b``'s, over their seeds."""
    values_a = list(sweep.sample(metric, *a).values())
    values_b = list(sweep.sample(metric, *b).values())
    return Comparison(label, metric, welch(values_a, values_b), (a, b))


def compare_falls(
    sweep: Sweep, metric: str, a: str, b: str, high: int, low: int, label: str
) -> Comparison:
    """``a``'s fall from memory ``high`` to ``low`` minus ``b``'s (per seed, then Welch)."""

    def falls(method: str) -> list[float]:
        top, bottom = sweep.sample(metric, method, high), sweep.sample(metric, method, low)
        return [top[s] - bottom[s] for s in sorted(set(top) & set(bottom))]

    cells = ((a, high), (a, low), (b, high), (b, low))
    return Comparison(label, metric, welch(falls(a), falls(b)), cells)


def paired(a: dict[int, float], b: dict[int, float]) -> Difference:
    """``a − b`` seed by seed over the seeds both have, against no difference (one-sample: the
    Welch interval of the differences against a sample of zeros reduces to the t interval)."""
    differences = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    return welch(differences, [0.0] * len(differences))


def fall(sweep: Sweep, metric: str, method: str, high: int, low: int, label: str) -> Comparison:
    """``method``'s fall from memory ``high`` to ``low`` against no fall (:func:`paired`)."""
    top, bottom = sweep.sample(metric, method, high), sweep.sample(metric, method, low)
    return Comparison(label, metric, paired(top, bottom), ((method, high), (method, low)))


def verdict(comparisons: Sequence[Comparison]) -> str:
    """The claim's verdict from its comparisons' outcomes (module docstring)."""
    outcomes = [c.difference.outcome for c in comparisons]
    if all(o == AHEAD for o in outcomes):
        return "confirmed"
    if AHEAD in outcomes:
        return "partly"
    if BEHIND in outcomes:
        return "refuted"
    return "within noise"


def cell(comparisons: Sequence[Comparison], detail: str = "all") -> str:
    """``**verdict**: ...`` with the comparisons; ``detail="worst"`` lists, per group of
    comparisons sharing a memory size, the least favourable one only."""
    if not comparisons:
        return "—"
    counts = {
        o: sum(c.difference.outcome == o for c in comparisons) for o in (AHEAD, NOISE, BEHIND)
    }
    head = f"**{verdict(comparisons)}**"
    if detail == "worst":
        head += (
            f" ({counts[AHEAD]} of {len(comparisons)} comparisons ahead, {counts[NOISE]} within "
            f"noise, {counts[BEHIND]} behind); least favourable at each memory:"
        )
        groups: dict[str, list[Comparison]] = {}
        for c in comparisons:
            groups.setdefault(c.label.rsplit(" at ", 1)[1], []).append(c)
        shown = [min(group, key=lambda c: c.difference.low) for group in groups.values()]
    else:
        head += ":"
        shown = list(comparisons)
    marks = {AHEAD: "ahead", NOISE: "within noise", BEHIND: "behind"}
    return head + " " + "; ".join(f"{c.text()} ({marks[c.difference.outcome]})" for c in shown)


# ---------------------------------------------------------------------------------------------
# The claims


@dataclass(frozen=True)
class Claim:
    """A row: what the paper says, what is tested, and the comparisons on one sweep (empty: not
    applicable there, with ``na`` saying why; or not measured, ``unmeasured`` giving the cell)."""

    name: str
    test: str
    comparisons: Callable[[Sweep], list[Comparison]]
    detail: str = "all"
    na: Callable[[Sweep], str | None] = lambda sweep: None
    unmeasured: Callable[[Sweep], str | None] = lambda sweep: None


def _n(method: str) -> str:
    return NAMES.get(method, method)


def beat_baselines(sweep: Sweep) -> list[Comparison]:
    out = []
    for method in ("gcl", "gdro"):
        for memory in sweep.memories(method):
            for baseline in BASELINES:
                if sweep.has(baseline, memory):
                    out.append(
                        compare(
                            sweep,
                            FINAL,
                            (method, memory),
                            (baseline, memory),
                            f"{_n(method)} − {_n(baseline)} at {memory}",
                        )
                    )
    return out


def gcl_large_memory(sweep: Sweep) -> list[Comparison]:
    largest = sweep.memories("gcl")[-2:]
    return [compare(sweep, FINAL, ("gcl", m), ("gdro", m), f"GCL − GDRO at {m}") for m in largest]


def gdro_small_memory(sweep: Sweep) -> list[Comparison]:
    smallest = sweep.memories("gdro")[:2]
    return [compare(sweep, FINAL, ("gdro", m), ("gcl", m), f"GDRO − GCL at {m}") for m in smallest]


def falls_from_largest(sweep: Sweep, grid: str, first: tuple[str, str],
                       second: tuple[str, str]) -> list[Comparison]:
    """``first``'s fall in final accuracy minus ``second``'s, from ``grid``'s largest memory to
    each smaller one (largest first); ``first``/``second`` are (strategy, name in the label)."""
    memories = sweep.memories(grid)
    top = memories[-1]
    return [
        compare_falls(sweep, FINAL, first[0], second[0], top, m,
                      f"{first[1]}'s fall − {second[1]}'s, {top} → {m}")
        for m in reversed(memories[:-1])
    ]


def gdro_stable(sweep: Sweep) -> list[Comparison]:
    return falls_from_largest(sweep, "gdro", ("gcl", "GCL"), ("gdro", "GDRO"))


def gdro_forgets_less(sweep: Sweep) -> list[Comparison]:
    return [
        compare(sweep, FORGETTING, ("gcl", m), ("gdro", m), f"GCL − GDRO at {m}")
        for m in sweep.memories("gdro")
    ]


def gdro_beats_gcl(sweep: Sweep) -> list[Comparison]:
    return [
        compare(sweep, FINAL, ("gdro", m), ("gcl", m), f"GDRO − GCL at {m}")
        for m in sweep.memories("gdro")
    ]


def domain_only(sweep: Sweep) -> str | None:
    return None if sweep.name.startswith("pacs") else "class-incremental: not this claim's setting"


def gdro_above_zero_shot(sweep: Sweep) -> list[Comparison]:
    return [
        compare(sweep, FINAL, ("gdro", m), ("zero-shot", 0), f"GDRO − zero-shot at {m}")
        for m in sweep.memories("gdro")[:2]
    ]


def gcl_drops(sweep: Sweep) -> list[Comparison]:
    memories = sweep.memories("gcl")
    return [
        fall(
            sweep,
            FINAL,
            "gcl",
            memories[1],
            memories[0],
            f"GCL's fall {memories[1]} → {memories[0]}",
        )
    ]


def retention_memories(sweep: Sweep, name: str) -> list[int]:
    """GDRO's two smallest memory sizes with retention drops on ``name`` over at least 2 seeds."""
    cells = sweep.values[DROP + name]
    return sorted(m for (method, m), seeds in cells.items() if method == "gdro" and len(seeds) > 1)[:2]


def gdro_retains(sweep: Sweep) -> list[Comparison]:
    """Per held-out set, at GDRO's two smallest memory sizes ``m``: GCL's retention drop at memory
    0 minus GDRO's at ``m``, and ZSCL's at ``m`` minus GDRO's where ZSCL ran at ``m`` (positive:
    GDRO keeps more of the untrained model's zero-shot accuracy). A cell needs 2 seeds (Welch)."""
    out = []
    for name in sweep.retention_sets():
        metric, cells = DROP + name, sweep.values[DROP + name]
        for memory in retention_memories(sweep, name):
            for other in (("gcl", 0), ("zscl", memory)):
                if len(cells.get(other, {})) > 1:
                    label = f"{_n(other[0])}'s drop at {other[1]} − GDRO's at {memory} ({name})"
                    out.append(compare(sweep, metric, other, ("gdro", memory), label))
    return out


def retention_unmeasured(sweep: Sweep) -> str | None:
    if not sweep.retention_sets():
        return "not measured (records carry no retention)"
    if not gdro_retains(sweep):
        return "not measured (no GDRO and GCL-at-0 runs with retention on 2 seeds or more)"
    return None


def co2l_collapses(sweep: Sweep) -> list[Comparison]:
    return falls_from_largest(sweep, "co2l", ("co2l", "Co2L"), ("gcl", "GCL"))


def cassle_forgets(sweep: Sweep) -> list[Comparison]:
    if not sweep.has("cassle", 0):
        return []
    others = [m for m in (*BASELINES, "gcl", "gdro") if m != "cassle" and sweep.has(m, 0)]
    return [
        compare(sweep, FORGETTING, ("cassle", 0), (m, 0), f"CaSSLe − {_n(m)} at 0") for m in others
    ]


def cassle_na(sweep: Sweep) -> str | None:
    return None if sweep.has("cassle", 0) else "not run: domain-incremental in the paper"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "**(a)** GCL and GDRO beat the baselines",
        "final acc. of GCL and of GDRO minus each trained baseline (CE, EWC, iCaRL, DER, Co2L, "
        "FOSTER, CaSSLe, ZSCL) run at the same memory size",
        beat_baselines,
        detail="worst",
    ),
    Claim(
        "**(b)** GCL is better with large memory",
        "final acc., GCL − GDRO at the two largest memory sizes",
        gcl_large_memory,
    ),
    Claim(
        "**(b)** GDRO is better with small memory",
        "final acc., GDRO − GCL at the two smallest memory sizes",
        gdro_small_memory,
    ),
    Claim(
        "**(b)** GDRO is more stable as memory shrinks",
        "fall of final acc. from the largest memory to each smaller one, GCL's − GDRO's",
        gdro_stable,
    ),
    Claim(
        "**(b)** GDRO forgets less",
        "forgetting against the zero-shot floor, GCL − GDRO at every memory size",
        gdro_forgets_less,
    ),
    Claim(
        "**(c)** domain-incremental: GDRO beats GCL after all tasks",
        "final acc., GDRO − GCL at every memory size",
        gdro_beats_gcl,
        na=domain_only,
    ),
    Claim(
        "**(d)** with small memory GDRO stays near zero-shot",
        'final acc., GDRO − zero-shot at the two smallest memory sizes, tested as "above" '
        '("near" has no test; the differences say how far)',
        gdro_above_zero_shot,
    ),
    Claim(
        "**(d)** GCL drops without memory",
        "final acc., GCL's fall from the smallest memory to none",
        gcl_drops,
    ),
    Claim(
        "**(d)** on held-out sets: with small memory GDRO stays near zero-shot, GCL drops without memory",
        "retention drop on each held-out set (the untrained model's zero-shot accuracy on classes "
        "the stream never contains minus the run's after the last experience), GCL's at memory 0 − "
        "GDRO's at the two smallest memory sizes, and ZSCL's − GDRO's at the same memory where "
        "ZSCL ran",
        gdro_retains,
        unmeasured=retention_unmeasured,
    ),
    Claim(
        "Co2L collapses as memory shrinks",
        "fall of final acc. from the largest memory to each smaller one, Co2L's − GCL's",
        co2l_collapses,
    ),
    Claim(
        "CaSSLe forgets",
        "forgetting against the zero-shot floor, CaSSLe − each other method run without memory",
        cassle_forgets,
        na=cassle_na,
    ),
)


def below_zero_shot(sweep: Sweep) -> str:
    """The trained methods whose final accuracy is below the zero-shot model's beyond noise."""
    found: dict[str, list[str]] = {}
    for method, memory in sorted(sweep.values[FINAL], key=lambda k: (_n(k[0]).lower(), k[1])):
        if method in ("zero-shot", "joint", "joint-converged"):
            continue
        c = compare(sweep, FINAL, (method, memory), ("zero-shot", 0), "")
        if c.difference.outcome == BEHIND:
            found.setdefault(_n(method), []).append(str(memory))
    if not found:
        return "none"
    return "; ".join(f"{name} at {', '.join(memories)}" for name, memories in found.items())


def claims_table(sweeps: dict[str, Sweep]) -> tuple[str, list[str]]:
    """The Markdown claims table and the comparisons within two standard deviations."""
    titles = [title for _, title in CLAIM_SWEEPS]
    lines = [
        "| claim | tested as | " + " | ".join(titles) + " |",
        "|---|---|" + "---|" * len(titles),
    ]
    close: list[str] = []
    for claim in CLAIMS:
        cells = []
        for folder, title in CLAIM_SWEEPS:
            sweep = sweeps[folder]
            reason = claim.na(sweep)
            if reason:
                cells.append(f"— ({reason})")
                continue
            unmeasured = claim.unmeasured(sweep)
            if unmeasured:
                cells.append(unmeasured)
                continue
            comparisons = claim.comparisons(sweep)
            cells.append(cell(comparisons, claim.detail))
            for c in comparisons:
                entry = f"{title.split(' ')[0]}: {c.label} ({metric_name(c.metric)})"
                if c.difference.within_two_std and entry not in close:
                    close.append(entry)
        lines.append(f"| {claim.name} | {claim.test} | " + " | ".join(cells) + " |")
    below = [below_zero_shot(sweeps[folder]) for folder, _ in CLAIM_SWEEPS]
    lines.append(
        "| (not a claim) which methods end below zero-shot | final acc., method − "
        "zero-shot, behind beyond noise | " + " | ".join(below) + " |"
    )
    return "\n".join(lines) + "\n\n" + protocol_lines(sweeps, CLAIM_SWEEPS), close


def protocol_lines(sweeps: dict[str, Sweep], shown: Sequence[tuple[str, str]] = PROXIES) -> str:
    """What the records say of the protocol of each sweep ``shown`` (module docstring), one line each."""
    lines = [f"Protocol of the {title.split(' ')[0]} records: {sweeps[folder].protocol}."
             for folder, title in shown]
    return "\n\n".join(lines) + "\n"


def seed_counts(sweeps: dict[str, Sweep]) -> dict[str, int]:
    """``{column name: the most seeds any (method, memory) of the sweep ran}``."""
    return {title.split(" ")[0]: max(len(seeds) for seeds in sweeps[folder].values[FINAL].values())
            for folder, title in CLAIM_SWEEPS}


def close_paragraph(close: list[str], seeds: dict[str, int]) -> str:
    """The list of the comparisons within two standard deviations, one line per proxy, each
    saying whether the 5-seed rule asks for more seeds there (``seeds``: :func:`seed_counts`)."""
    if not close:
        return "No comparison of the table is within two standard deviations.\n"
    by_proxy: dict[str, list[str]] = {}
    for entry in close:
        proxy, what = entry.split(": ", 1)
        by_proxy.setdefault(proxy, []).append(what)
    lines = [
        "Comparisons of the table within two standard deviations (the difference below twice the "
        f"larger std over the seeds; the {MIN_SEEDS}-seed rule asks for {MIN_SEEDS} seeds for them):",
        "",
    ]
    for proxy, items in by_proxy.items():
        count = seeds[proxy]
        status = (f"{count} seeds, the rule asks for no more: these stay undecided at this count"
                  if count >= MIN_SEEDS else f"{count} seeds: `--seeds-needed` lists the runs to add")
        lines.append(f"- {proxy} ({status}): " + "; ".join(items) + ".")
    return "\n".join(lines) + "\n"


def runs_to_add(sweep: Sweep, comparisons: Sequence[Comparison]) -> dict[tuple[str, int], list[int]]:
    """The 5-seed rule on ``comparisons``: each (method, memory) read by one within two standard
    deviations that has fewer than :data:`MIN_SEEDS` seeds (runs), with the seeds it lacks (the
    smallest unused ones), in method and memory order."""
    wanted: dict[tuple[str, int], list[int]] = {}
    for c in comparisons:
        if not c.difference.within_two_std:
            continue
        for run in c.cells:
            have = set(sweep.sample(FINAL, *run))
            if len(have) < MIN_SEEDS:
                unused = (seed for seed in range(MIN_SEEDS + len(have)) if seed not in have)
                wanted[run] = [next(unused) for _ in range(MIN_SEEDS - len(have))]
    return dict(sorted(wanted.items(), key=lambda item: (_n(item[0][0]).lower(), item[0][1])))


def seeds_needed(sweeps: dict[str, Sweep]) -> list[str]:
    """:func:`runs_to_add` over the comparisons of the claims table, one line per sweep and run."""
    lines = []
    for folder, _ in CLAIM_SWEEPS:
        sweep = sweeps[folder]
        comparisons: dict[tuple[str, str], Comparison] = {}  # one of two claims ((b), (c)) once
        for claim in CLAIMS:
            if not (claim.na(sweep) or claim.unmeasured(sweep)):
                comparisons.update({(c.label, c.metric): c for c in claim.comparisons(sweep)})
        for (method, memory), seeds in runs_to_add(sweep, list(comparisons.values())).items():
            lines.append(f"{folder}: {method} at memory {memory}, seeds {', '.join(map(str, seeds))}")
    return lines


def print_seeds_needed(sweeps: dict[str, Sweep]) -> None:
    lines = seeds_needed(sweeps)
    print(f"claims: runs to add under the {MIN_SEEDS}-seed rule (comparisons within two standard "
          f"deviations with fewer than {MIN_SEEDS} seeds): {len(lines) or 'none'}")
    for line in lines:
        print(f"  {line}")


# ---------------------------------------------------------------------------------------------
# The final-accuracy overview of README.md


OVERVIEW_METHODS = (
    "zero-shot",
    "ce",
    "ewc",
    "icarl",
    "der",
    "co2l",
    "foster",
    "zscl",
    "gcl",
    "gdro",
    "joint",
)
#: Methods whose column the overview shows only when some proxy ran them.
OVERVIEW_IF_RUN = ("zscl",)
OVERVIEW_ROWS = ((0, "none"), (20, "20"), (500, "500"))


def overview_table(sweeps: dict[str, Sweep]) -> str:
    """Mean final accuracy (%) per proxy and memory (none, 20, 500); the best continual method
    in bold; zero-shot and joint only in the no-memory row (they have no memory); ZSCL only when
    some proxy ran it. Then each proxy's protocol line (iCaRL's score among it)."""
    methods = [
        m for m in OVERVIEW_METHODS
        if m not in OVERVIEW_IF_RUN or any(s.memories(m) for s in sweeps.values())
    ]
    header = "| memory | " + " | ".join(_n(m) for m in methods) + " |"
    lines = [header, "|---|" + "---:|" * len(methods)]
    for folder, title in PROXIES:
        sweep = sweeps[folder]
        for memory, name in OVERVIEW_ROWS:
            means = {m: _mean(sweep, m, memory) for m in methods}
            continual = {
                m: v for m, v in means.items() if v is not None and m not in ("zero-shot", "joint")
            }
            best = max(continual, key=lambda m: continual[m])
            cells = []
            for m in methods:
                if m in ("zero-shot", "joint"):
                    value = _mean(sweep, m, 0) if memory == 0 else None
                    cells.append(f"{value * 100:.1f}" if value is not None else "")
                    continue
                value = means[m]
                text = "—" if value is None else f"{value * 100:.1f}"
                if value is not None and m == best:
                    text = f"**{text}**"
                if value is None and memory != 0 and sweep.has(m, 0):
                    text = ""  # a method without memory (EWC): its one row is "none"
                cells.append(text)
            lines.append(f"| {title.split(' ')[0]}, {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + protocol_lines(sweeps)


def _mean(sweep: Sweep, method: str, memory: int) -> float | None:
    if not sweep.has(method, memory):
        return None
    values = list(sweep.sample(FINAL, method, memory).values())
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------------
# The ablation tables of experiments/README.md

#: (ablation sweep, the proxy whose zero-shot runs are its floor and whose runs are the baseline,
#: column title). An ablation is read against the proxy records of its own protocol: both were
#: re-run with their re-run proxy's tuned values (the earlier protocol's ablations are in the
#: history, experiments/README.md "Records of the earlier protocol").
ESTIMATOR_SWEEPS = (
    ("ablation_cifar10_rerun", "cifar10_proxy_rerun", "CIFAR-10"),
    ("ablation_pacs_rerun", "pacs_proxy_rerun", "PACS"),
)
COMPOSITION_SWEEPS = (
    ("share_cifar10_rerun", "cifar10_proxy_rerun", "CIFAR-10"),
    ("share_pacs_rerun", "pacs_proxy_rerun", "PACS"),
)
COMPOSITION_METHODS = ("ce", "der", "co2l", "gcl", "gdro")
ABLATION_MEMORIES = (20, 200)
#: The negatives ablations: (README marker, the sweep with every seen class's logits, its tune
#: folder, the sweep it differs from in the negatives alone: the batch's classes), each re-tuned
#: under its own negatives.
NEGATIVES_SWEEPS = (
    ("ablation negatives digits", "ablation_seen_digits", "ablation_seen_digits_tune", "default"),
    ("ablation negatives cifar10", "ablation_seen_cifar10", "ablation_seen_cifar10_tune",
     "cifar10_proxy_rerun"),
)
NEGATIVES_METHODS = ("ce", "ewc", "der", "icarl", "co2l", "foster", "zscl", "gcl", "gdro", "joint",
                     "joint-converged")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, std


def estimators_table() -> str:
    """Final accuracy (%) mean ± std over seeds, forgetting against the floor in brackets, of
    every variant of the estimator ablations at each memory size."""
    sweeps = [(read_sweep(RESULTS / a, RESULTS / p), t) for a, p, t in ESTIMATOR_SWEEPS]
    columns = [(s, t, m) for s, t in sweeps for m in ABLATION_MEMORIES]
    variants = sorted({name for s, _ in sweeps for name, _ in s.values[FINAL]})
    lines = [
        "| variant | " + " | ".join(f"{t} @ {m}" for _, t, m in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for variant in variants:
        cells = []
        for sweep, _, memory in columns:
            if not sweep.has(variant, memory):
                cells.append("—")
                continue
            mean, std = _mean_std(list(sweep.sample(FINAL, variant, memory).values()))
            forgot = sweep.values[FORGETTING].get((variant, memory))
            forgetting = "" if not forgot else f" ({_pp(sum(forgot.values()) / len(forgot))})"
            cells.append(f"{mean * 100:.1f} ± {std * 100:.1f}{forgetting}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def composition_table() -> str:
    """Final accuracy (%): the proxy's union-batch mean → the share sweep's mean ± std, both over
    the share sweep's seeds."""
    sweeps = [
        (read_sweep(RESULTS / a), read_sweep(RESULTS / p), t) for a, p, t in COMPOSITION_SWEEPS
    ]
    columns = [(share, union, t, m) for share, union, t in sweeps for m in ABLATION_MEMORIES]
    lines = [
        "| method | " + " | ".join(f"{t} @ {m}: union → share" for _, _, t, m in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method in COMPOSITION_METHODS:
        cells = []
        for share, union, _, memory in columns:
            shared = share.sample(FINAL, method, memory)
            # the union runs of the seeds the share sweep ran: the same class orders and data
            union_values = union.sample(FINAL, method, memory)
            union_mean, _ = _mean_std([union_values[seed] for seed in shared])
            mean, std = _mean_std(list(shared.values()))
            cells.append(f"{union_mean * 100:.1f} → {mean * 100:.1f} ± {std * 100:.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def negatives_table(seen_folder: str, tune_folder: str, batch_folder: str) -> str:
    """Final accuracy (%): the batch's classes → every seen class, means over the seeds both
    sweeps ran, and the per-seed difference seen − batch (the same seed: the same class order,
    data and exemplars) with its 95 % t interval; then how many cells are ahead, behind and
    within noise, and the seen tune's studies whose bound walk moved or kept a value at a bound
    of its space, and any still at one. The methods
    and memory sizes are the seen sweep's."""
    seen_sweep, batch_sweep = read_sweep(RESULTS / seen_folder), read_sweep(RESULTS / batch_folder)
    methods = [m for m in NEGATIVES_METHODS if seen_sweep.memories(m)]
    memories = sorted({m for method in methods for m in seen_sweep.memories(method)})
    lines = ["| method | " + " | ".join(f"memory {m}" for m in memories) + " |",
             "|---|" + "---:|" * len(memories)]
    outcomes: dict[str, list[str]] = {AHEAD: [], BEHIND: [], NOISE: []}
    for method in methods:
        cells = []
        for memory in memories:
            if not (batch_sweep.has(method, memory) and seen_sweep.has(method, memory)):
                cells.append("—")
                continue
            batch, seen = batch_sweep.sample(FINAL, method, memory), seen_sweep.sample(FINAL, method, memory)
            seeds = sorted(set(batch) & set(seen))
            diff = paired(seen, batch)
            outcomes[diff.outcome].append(f"{_n(method)} at {memory}")
            mean_batch = sum(batch[s] for s in seeds) / len(seeds)
            mean_seen = sum(seen[s] for s in seeds) / len(seeds)
            cells.append(f"{mean_batch * 100:.1f} → {mean_seen * 100:.1f} "
                         f"({_pp(diff.diff, sign=True)} [{_pp(diff.low)}, {_pp(diff.high)}])")
        lines.append(f"| {_n(method)} | " + " | ".join(cells) + " |")
    studies = read_yaml((RESULTS / tune_folder / "tuned.yaml").read_text())["strategies"]
    tuned = [(label, size, study) for label, entry in studies.items() if label in methods
             for size, study in sorted(entry["by_mem_size"].items())]
    at_bound = [f"{_n(label)} at {size} ({', '.join(item['param'] for item in study['at_bound'])})"
                for label, size, study in tuned if study.get("at_bound")]
    moved = [f"{_n(label)} at {size} ({', '.join(w['param'] for w in walks)})" for label, size, study in tuned
             if (walks := [w for w in study.get("bound_walks") or [] if w["value"] != w["start_value"]])]
    kept = [f"{_n(label)} at {size} ({', '.join(w['param'] for w in walks)})" for label, size, study in tuned
            if (walks := [w for w in study.get("bound_walks") or [] if w["value"] == w["start_value"]])]
    total = sum(len(v) for v in outcomes.values())
    summary = (f"Of {total} (method, memory) cells, every seen class's logits score higher than the "
               f"batch's classes in {len(outcomes[AHEAD])} ({', '.join(outcomes[AHEAD]) or 'none'}), "
               f"lower in {len(outcomes[BEHIND])} and within noise in {len(outcomes[NOISE])} (95 % "
               f"interval of the per-seed difference). Studies of the seen tune whose best value lay at a "
               f"bound of its space after the line search, walked past it: moved in {'; '.join(moved) or 'none'}; "
               f"kept (no better past it, or the parameter's own limit) in {'; '.join(kept) or 'none'}. "
               f"Still at a bound: {'; '.join(at_bound) or 'none'}.")
    return "\n".join(lines) + "\n\n" + summary + "\n"


def generated_summaries() -> dict[str, str]:
    """``{sweep: its summary table}`` from the records, as ``avalanche-clip report`` writes it
    to ``report/summary.md``."""
    return {
        folder: to_markdown(summary_table(load_records(RESULTS / folder)))
        for folder in SUMMARY_SWEEPS
    }


def generated_readmes() -> dict[Path, str]:
    """The two READMEs as the records make them."""
    sweeps = {folder: read_sweep(RESULTS / folder) for folder, _ in CLAIM_SWEEPS}
    table, close = claims_table(sweeps)
    experiments = EXPERIMENTS_README.read_text(encoding="utf-8")
    experiments = replace_between(experiments, "claims", table, EXPERIMENTS_README)
    experiments = replace_between(
        experiments, "claims-close", close_paragraph(close, seed_counts(sweeps)), EXPERIMENTS_README
    )
    for folder, summary in generated_summaries().items():
        experiments = replace_between(experiments, f"summary {folder}", summary, EXPERIMENTS_README)
    for folder in TUNED_FOLDERS:
        table = tuned_table(RESULTS / folder / "tuned.yaml")
        experiments = replace_between(experiments, f"tuned {folder}", table, EXPERIMENTS_README)
    experiments = replace_between(
        experiments, "ablation estimators", estimators_table(), EXPERIMENTS_README
    )
    experiments = replace_between(
        experiments, "ablation composition", composition_table(), EXPERIMENTS_README
    )
    for marker, seen_folder, tune_folder, batch_folder in NEGATIVES_SWEEPS:
        experiments = replace_between(
            experiments, marker, negatives_table(seen_folder, tune_folder, batch_folder),
            EXPERIMENTS_README,
        )
    main = MAIN_README.read_text(encoding="utf-8")
    main = replace_between(main, "overview", overview_table(sweeps), MAIN_README)
    return {EXPERIMENTS_README: experiments, MAIN_README: main}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the tables into the READMEs")
    action.add_argument("--check", action="store_true", help="exit 1 if a README differs")
    action.add_argument(
        "--seeds-needed", action="store_true", help=f"list the runs the {MIN_SEEDS}-seed rule asks for"
    )
    args = parser.parse_args(argv)
    if args.seeds_needed:
        print_seeds_needed({folder: read_sweep(RESULTS / folder) for folder, _ in CLAIM_SWEEPS})
        return 0
    if not (args.write or args.check):
        sweeps = {folder: read_sweep(RESULTS / folder) for folder, _ in CLAIM_SWEEPS}
        table, close = claims_table(sweeps)
        print(table)
        print(close_paragraph(close, seed_counts(sweeps)))
        print(overview_table(sweeps))
        return 0
    generated = generated_readmes()
    if args.check:  # the reports the tables are copied from must be the records' too
        for folder, summary in generated_summaries().items():
            generated[RESULTS / folder / "report" / "summary.md"] = summary
    if args.write:
        for path, text in generated.items():
            path.write_text(text, encoding="utf-8")
            print(f"claims: wrote {path.relative_to(ROOT)}")
        print_seeds_needed({folder: read_sweep(RESULTS / folder) for folder, _ in CLAIM_SWEEPS})
        return 0
    if args.check:
        stale = False
        for path, text in generated.items():
            current = path.read_text(encoding="utf-8")
            if current != text:
                stale = True
                rel = str(path.relative_to(ROOT))
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        f"{rel} (committed)",
                        f"{rel} (from the records)",
                    )
                )
        if stale:
            print(
                "claims: the files above differ from the records; run avalanche-clip report on a "
                "stale sweep, then python experiments/claims.py --write"
            )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
