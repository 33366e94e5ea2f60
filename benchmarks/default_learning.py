"""Does every registered method learn with its constructor defaults, as a user's script runs it?

A user who does not tune writes the README's script with only the model, the memory and the
device given; every other value (learning rate, epochs, weight decay, the method's own
hyper-parameters) is the constructor's default::

    model, _, eval_tf, tokenizer = create_clip("effnet-lite0-clip", "imagenet", image_size=64)
    set_trainable(model, "projections")
    benchmark = build_scenario("digits", ...)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, templates="digit")
    strategy = build_strategy(name, StrategySetup(classifier=classifier, benchmark=benchmark,
                                                  mem_size=100, device="cpu"))
    for experience in benchmark.train_stream: strategy.train(experience)
    strategy.eval(benchmark.test_stream)

This script does exactly that for every registered method, and for naive fine-tuning without
memory (the floor a replay method must beat), and prints the final stream accuracy (every class
seen, all test data). To keep a method's run to seconds the frozen image trunk's features are
cached (``apply_feature_cache``, as the command line does; training then reads the eval-transformed
images, so there is no augmentation) and only the projections train.

    python benchmarks/default_learning.py                                  # digits, 3 seeds
    python benchmarks/default_learning.py --scenario cifar10 --data-root ../shared/data

Memory: ``--mem-size`` for methods that use one (optional or required), 0 for the others.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_clip.features import apply_feature_cache
from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.scenarios import build_scenario, scenario_kind
from avalanche_clip.strategies import STRATEGIES, StrategySetup, build_strategy, strategy_info

STREAM_ACCURACY = "Top1_Acc_Stream/eval_phase/test_stream"
#: The small real-image streams: (scenario, templates, options); cifar10 needs ``--data-root``.
SCENARIOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "digits": ("digits", "digit", {}),
    "cifar10": ("split-imagefolder", "photo", {"max_train_per_class": 100, "max_test_per_class": 50}),
    "pacs": ("domain-folder", "photo", {"max_train_per_class": 20, "max_test_per_class": 10}),
}
#: Stream order of the PACS domains (domain-incremental, as the PACS proxy).
PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
#: Chance accuracy of each stream's final evaluation (every class visible).
CHANCE = {"digits": 1 / 10, "cifar10": 1 / 10, "pacs": 1 / 7}
#: The no-memory floor, always measured (registered as ``naive``: CE fine-tuning, memory 0).
FLOOR = "naive"


def methods_to_run(names: list[str] | None, scenario: str = "digits") -> list[str]:
    """Every trained registered method that supports ``scenario``'s kind (zero-shot never trains:
    its defaults are moot)."""
    chosen = list(STRATEGIES) if not names else names
    unknown = sorted(set(chosen) - set(STRATEGIES))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; registered: {sorted(STRATEGIES)}")
    kind = scenario_kind(SCENARIOS[scenario][0])
    return [n for n in chosen if strategy_info(n).trains and kind in strategy_info(n).scenarios]


def memory_for(method: str, mem_size: int) -> int:
    """The memory a user gives ``method``: ``mem_size`` unless the method takes none."""
    return 0 if strategy_info(method).memory == "none" else mem_size


def user_stream(*, scenario: str = "digits", data_root: str | None = None, seed: int = 0,
                with_index: bool = True, cache_dir: str | Path, device: str = "cpu",
                scenario_options: dict[str, Any] | None = None) -> tuple[Any, CLIPClassifier]:
    """The user's model and stream (module docstring): the zero-shot classifier and the benchmark
    over cached trunk features; ``scenario_options`` subsamples the stream (tests keep it small)."""
    name, templates, options = SCENARIOS[scenario]
    options = {**options, **(scenario_options or {})}
    torch.manual_seed(seed)
    model, _, eval_tf, tokenizer = create_clip("effnet-lite0-clip", "imagenet", image_size=64, device=device)
    set_trainable(model, "projections")
    domains = PACS_DOMAINS if scenario == "pacs" else None
    benchmark = build_scenario(name, root=data_root, seed=seed, with_index=with_index, domains=domains,
                               train_transform=eval_tf, eval_transform=eval_tf, **options)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, templates)
    benchmark = apply_feature_cache(benchmark, classifier, mode=True, trainable="projections",
                                    cache_dir=cache_dir, device=device, progress=False)
    return benchmark, classifier.to(device)


def trained_with_defaults(method: str, benchmark: Any, classifier: CLIPClassifier, *, mem_size: int = 100,
                          seed: int = 0, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """``method`` trained with its constructor defaults on a copy of the zero-shot ``classifier``
    (only the model, the memory, the device, and ``seed``, which a user's script fixes by default
    too, are given), and its evaluation's metrics on the whole test stream."""
    torch.manual_seed(seed)
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    strategy = build_strategy(method, StrategySetup(classifier=copy.deepcopy(classifier), benchmark=benchmark,
                                                    mem_size=memory_for(method, mem_size),
                                                    device=device, seed=seed, evaluator=evaluator))
    if strategy_info(method).joint:
        strategy.train(benchmark.train_stream)
    else:
        for experience in benchmark.train_stream:
            strategy.train(experience)
    return strategy, strategy.eval(benchmark.test_stream)


def train_with_defaults(method: str, benchmark: Any, classifier: CLIPClassifier, *, mem_size: int = 100,
                        seed: int = 0, device: str = "cpu") -> float:
    """Final stream accuracy of ``method`` (:func:`trained_with_defaults`)."""
    _, metrics = trained_with_defaults(method, benchmark, classifier, mem_size=mem_size, seed=seed, device=device)
    return float(metrics[STREAM_ACCURACY])


def user_run(method: str, *, mem_size: int = 100, seed: int = 0, **stream: Any) -> float:
    """``method`` with its constructor defaults, from the user's model and stream on
    (:func:`user_stream` with ``stream``'s keywords, then :func:`train_with_defaults`)."""
    benchmark, classifier = user_stream(seed=seed, with_index=strategy_info(method).uses_index, **stream)
    return train_with_defaults(method, benchmark, classifier, mem_size=mem_size, seed=seed,
                               device=stream.get("device", "cpu"))


def measure(methods: list[str], *, seeds: list[int], **kwargs: Any) -> dict[str, list[float]]:
    """``{method: [final accuracy per seed]}``, the floor (``naive``) first."""
    results: dict[str, list[float]] = {}
    for method in [FLOOR, *[m for m in methods if m != FLOOR]]:
        start = time.perf_counter()
        results[method] = [user_run(method, seed=s, **kwargs) for s in seeds]
        print(f"{method:16s} {' '.join(f'{a:.3f}' for a in results[method])}  "
              f"({(time.perf_counter() - start) / len(seeds):.1f} s a run)", flush=True)
    return results


def table(results: dict[str, list[float]], *, mem_size: int, chance: float) -> str:
    """A Markdown table: mean, min over seeds and the margins over chance and over the floor."""
    floor = results[FLOOR]
    lines = ["| method | memory | final accuracy (mean) | min over seeds | min − chance | "
             "min over seeds of (method − naive) |", "|---|---:|---:|---:|---:|---:|"]
    for method, accs in results.items():
        memory = memory_for(method, mem_size)
        over_floor = f"{min(a - f for a, f in zip(accs, floor, strict=True)):+.3f}" if memory else "—"
        lines.append(f"| {method} | {memory} | {statistics.mean(accs):.3f} | {min(accs):.3f} | "
                     f"{min(accs) - chance:+.3f} | {over_floor} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="digits")
    parser.add_argument("--data-root", default=None, help="folder holding cifar10/ and pacs/ (not for digits)")
    parser.add_argument("--mem-size", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="*", default=None, help="default: every trained registered method")
    parser.add_argument("--max-train-per-class", type=int, default=None, help="subsample the stream")
    parser.add_argument("--max-test-per-class", type=int, default=None)
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: a temporary folder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the accuracies here")
    args = parser.parse_args(argv)
    if args.scenario != "digits" and args.data_root is None:
        parser.error(f"--scenario {args.scenario} needs --data-root (the folder holding {args.scenario}/)")
    data_root = None if args.data_root is None else os.path.join(args.data_root, args.scenario)
    options = {k: v for k, v in (("max_train_per_class", args.max_train_per_class),
                                 ("max_test_per_class", args.max_test_per_class)) if v is not None}
    with tempfile.TemporaryDirectory() as scratch:
        results = measure(methods_to_run(args.methods, args.scenario), seeds=args.seeds, scenario=args.scenario,
                          data_root=data_root, mem_size=args.mem_size, device=args.device,
                          cache_dir=args.cache_dir or scratch, scenario_options=options)
    print()
    print(table(results, mem_size=args.mem_size, chance=CHANCE[args.scenario]))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "accuracy": results}, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
