"""A small synthetic sweep with known accuracies, written as ``results.jsonl`` in the schema.

Accuracies come from closed-form functions of (scenario, strategy, memory, seed, experience), so
tests can compute the expected summary independently of the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

N_EXPERIENCES = {"split-cifar10": 3, "pacs": 4}
SCENARIO_OFFSET = {"split-cifar10": 0.0, "pacs": 0.05}
SEEDS = (0, 1, 2)
SEED_JITTER = {0: -0.01, 1: 0.0, 2: 0.025, 3: 0.3}
BASE = {"zero-shot": 0.40, "ewc": 0.30, "gcl": 0.50, "gdro": 0.55, "joint": 0.80}
MEMORY_SIZES = {
    "zero-shot": (0,),
    "ewc": (0,),
    "gcl": (0, 20, 100),
    "gdro": (0, 20, 100),
    "joint": (0,),
}
#: (scenario, strategy, mem_size) cells in the order the summary must list them.
EXPECTED_ORDER = [
    (scenario, strategy, mem)
    for scenario in ("pacs", "split-cifar10")
    for strategy in ("zero-shot", "ewc", "gcl", "gdro", "joint")
    for mem in MEMORY_SIZES[strategy]
]
#: The run killed while writing its last record: two whole records, then a cut line.
UNFINISHED = ("split-cifar10", "gcl", 20, 3)


def run_id(scenario: str, strategy: str, mem: int, seed: int) -> str:
    return f"{scenario}__{strategy}__m{mem}__s{seed}"


def stream_acc(scenario: str, strategy: str, mem: int, seed: int, exp: int) -> float:
    if strategy == "zero-shot":  # no training: the full-test-set floor once every class is seen
        return round(zero_shot_acc(scenario, seed) + 0.05 * (N_EXPERIENCES[scenario] - 1 - exp), 6)
    value = BASE[strategy] + 0.001 * mem - 0.05 * exp + SEED_JITTER[seed] * (1 + mem / 100)
    return round(value + SCENARIO_OFFSET[scenario], 6)


#: How much each method's accuracy on an experience falls per later experience (the untrained
#: zero-shot model's too: in class-incremental streams more classes compete as they are seen).
DRIFT = {"zero-shot": 0.03, "ewc": 0.06, "gcl": 0.02, "gdro": 0.01, "joint": 0.0}


def experience_acc(scenario: str, strategy: str, mem: int, seed: int, exp: int, after: int) -> float:
    """``a_{after,exp}``: the accuracy on test experience ``exp`` after training ``after``."""
    drift = DRIFT[strategy] * (after - exp)
    return round(stream_acc(scenario, strategy, mem, seed, exp) - drift, 6)


def forgetting(strategy: str, mem: int, seed: int, exp: int) -> float | None:
    if exp == 0 or strategy == "joint":
        return None
    return round(0.02 * exp + 0.01 * seed - 0.0005 * mem, 6)  # negative for gdro/gcl at mem 100


def zero_shot_acc(scenario: str, seed: int) -> float:
    return round(0.40 + 0.01 * seed + SCENARIO_OFFSET[scenario], 6)


def experiences(scenario: str, strategy: str) -> list[int]:
    n = N_EXPERIENCES[scenario]
    return [n - 1] if strategy == "joint" else list(range(n))  # joint: a final record only


def record(scenario: str, strategy: str, mem: int, seed: int, exp: int) -> dict[str, Any]:
    """One record, exactly the keys of the schema."""
    n = N_EXPERIENCES[scenario]
    return {
        "run_id": run_id(scenario, strategy, mem, seed),
        "scenario": scenario,
        "strategy": strategy,
        "mem_size": mem,
        "seed": seed,
        "experience": exp,
        "n_experiences": n,
        "stream_accuracy": stream_acc(scenario, strategy, mem, seed, exp),
        "accuracy_per_experience": [
            experience_acc(scenario, strategy, mem, seed, j, exp) for j in range(exp + 1)
        ],
        "forgetting": forgetting(strategy, mem, seed, exp),
        "wall_time_s": 10.0 * (exp + 1),
        "model": "effnet-lite0-clip",
        "pretrained": None,
        "zero_shot_accuracy": zero_shot_acc(scenario, seed),
        "final": exp == n - 1,
    }


def write_jsonl(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    """Write ``records`` one JSON object per line, then ``tail`` verbatim (e.g. a cut line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def write_sweep(root: Path, scenarios: tuple[str, ...] = tuple(N_EXPERIENCES)) -> Path:
    """The synthetic sweep of ``scenarios`` under ``root/runs/<run_id>/results.jsonl`` (with the
    killed run when its scenario is included); returns ``root``."""
    for scenario in scenarios:
        for strategy, sizes in MEMORY_SIZES.items():
            for mem in sizes:
                for seed in SEEDS:
                    records = [
                        record(scenario, strategy, mem, seed, e)
                        for e in experiences(scenario, strategy)
                    ]
                    write_jsonl(
                        root / "runs" / run_id(scenario, strategy, mem, seed) / "results.jsonl",
                        records,
                    )
    scenario, strategy, mem, seed = UNFINISHED
    if scenario not in scenarios:
        return root
    whole = [record(scenario, strategy, mem, seed, e) for e in (0, 1)]
    cut = json.dumps(record(scenario, strategy, mem, seed, 2))[:57]
    write_jsonl(root / "runs" / run_id(*UNFINISHED) / "results.jsonl", whole, tail=cut)
    return root


def n_finished_runs(scenarios: tuple[str, ...] = tuple(N_EXPERIENCES)) -> int:
    return sum(len(sizes) * len(SEEDS) for sizes in MEMORY_SIZES.values()) * len(scenarios)


def n_finished_records(scenarios: tuple[str, ...] = tuple(N_EXPERIENCES)) -> int:
    return sum(
        len(sizes) * len(SEEDS) * len(experiences(scenario, strategy))
        for scenario in scenarios
        for strategy, sizes in MEMORY_SIZES.items()
    )
