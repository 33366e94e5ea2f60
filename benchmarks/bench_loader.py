"""Batched reads of cached features against Avalanche's per-item reads, in one process.

    python benchmarks/bench_loader.py --repeats 4
    python benchmarks/bench_loader.py --config experiments/cifar10_proxy.yaml --strategy ce \\
        --set data_root=/work/shared/data/cifar10 --repeats 2

Two measurements, each taking turns between the two paths (``batched``: the loaders read a
whole batch of cached features at once, :mod:`avalanche_clip.training.batched_items`;
``per item``: the same loaders with that read switched off, so Avalanche's ``dataset[i]``
runs once per item, as before it existed):

1. **the training loader alone**: the batches of the last experience's loader of a run (new
   data ∪ memory, the config's views), the same sampler and seeds, in µs per batch, checked
   equal batch for batch;
2. **whole runs** (``execute_run``, one thread, denormals flushed as the command line does,
   no zero-shot floor): a continual run (``--strategy``, ``--mem-size``, checkpoints on) and
   joint training of the same steps, median wall time of ``--repeats`` rounds after a warm-up,
   with their ratio under each path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

pin_cpu_kernels()  # as the command line does, before any tensor operation

import torch  # noqa: E402

from avalanche_clip.cli import _config  # noqa: E402
from avalanche_clip.common.threads import apply_threads  # noqa: E402
from avalanche_clip.pipeline.run import execute_run  # noqa: E402
from avalanche_clip.training import batched_items, seeded_items  # noqa: E402

warnings.filterwarnings("ignore")
PATHS = ("batched", "per item")
_BATCHED = batched_items.batched_fetch


def use_path(path: str) -> None:
    """Switch the loaders' batched read on (``batched``) or off (``per item``)."""
    fetch = _BATCHED if path == "batched" else (lambda *args, **kwargs: None)
    seeded_items.batched_fetch = fetch
    batched_items.batched_fetch = fetch


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


def time_loader(config: dict, work: Path, rounds: int) -> dict[str, float]:
    """µs per batch of a run's last training loader under each path (batches checked equal)."""
    datasets = []
    original = seeded_items.SeededItems.__init__

    def keep(self, dataset):  # type: ignore[no-untyped-def]
        original(self, dataset)
        datasets.append(dataset)

    seeded_items.SeededItems.__init__ = keep  # type: ignore[method-assign]
    try:
        use_path("batched")
        execute_run(config, work / "loader_run")
    finally:
        seeded_items.SeededItems.__init__ = original  # type: ignore[method-assign]
    from avalanche_clip.strategies.budget import StepBudget

    dataset = datasets[-1]
    budget = StepBudget(seed=0)
    budget.memory_tail_size = int(config["mem_size"])

    def batches() -> tuple[list, float]:
        loader = budget.train_loader(dataset, batch_size=int(config["train_mb_size"]), epochs=1,
                                     experience=0, device=torch.device("cpu"))
        started = time.perf_counter()
        out = list(loader)
        return out, (time.perf_counter() - started) / max(1, len(out)) * 1e6

    spent: dict[str, list[float]] = {path: [] for path in PATHS}
    reference = None
    for repeat in range(rounds + 1):
        for path in (PATHS if repeat % 2 else PATHS[::-1]):
            use_path(path)
            out, per_batch = batches()
            if reference is None:
                reference = out
            elif not all(_same(a, b) for a, b in zip(reference, out, strict=True)):
                raise SystemExit(f"the {path} loader gave other batches")
            if repeat:
                spent[path].append(per_batch)
    use_path("batched")
    return {path: statistics.median(values) for path, values in spent.items()}


def time_runs(configs: dict[str, dict], work: Path, rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds of each run under each path."""
    spent: dict[tuple[str, str], list[float]] = {}
    order = [(path, name) for path in PATHS for name in configs]
    for repeat in range(rounds + 1):  # the first round warms caches (features, imports)
        for path, name in (order if repeat % 2 else order[::-1]):
            use_path(path)
            folder = work / f"{name}_{path.replace(' ', '_')}_{repeat}"
            started = time.perf_counter()
            execute_run(configs[name], folder)
            if repeat:
                spent.setdefault((path, name), []).append(time.perf_counter() - started)
            shutil.rmtree(folder, ignore_errors=True)
    use_path("batched")
    return {path: {name: statistics.median(spent[(path, name)]) for name in configs} for path in PATHS}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a run or sweep config (default: the embedded default)")
    parser.add_argument("--strategy", default="gcl", help="the continual run's strategy")
    parser.add_argument("--mem-size", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after a warm-up")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="config overrides")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    apply_threads(1)  # one thread, denormals flushed: as a run process computes
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_loader_"))
    common = ["seed=0", "threads=1", "progress=false", "zero_shot_floor=false", *args.set]
    if not any(item.startswith("cache_dir=") for item in args.set) and args.config is None:
        common.append(f"cache_dir={work / 'cache'}")
    configs = {
        "continual": _config(args.config, [f"strategy={args.strategy}", f"mem_size={args.mem_size}",
                                           "checkpoint=true", *common], sweep=False),
        "joint": _config(args.config, ["strategy=joint", "mem_size=0", *common], sweep=False),
    }
    loader = time_loader(configs["continual"], work, args.repeats)
    runs = time_runs(configs, work, args.repeats)
    print(f"\n{args.config or 'embedded default'}; {args.strategy} memory {args.mem_size}; "
          f"{args.repeats} timed rounds; load average {os.getloadavg()[0]:.1f}\n")
    print("| path | training loader (µs / batch) | continual run (s) | joint run (s) | continual / joint |")
    print("|---|---:|---:|---:|---:|")
    for path in PATHS:
        continual, joint = runs[path]["continual"], runs[path]["joint"]
        print(f"| {path} | {loader[path]:.0f} | {continual:.2f} | {joint:.2f} | {continual / joint:.2f} |")
    saved = {name: runs["per item"][name] - runs["batched"][name] for name in configs}
    print(f"| per item − batched | {loader['per item'] - loader['batched']:.0f} | "
          f"{saved['continual']:.2f} | {saved['joint']:.2f} | |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    result = {"loader_us_per_batch": loader, "runs_s": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
