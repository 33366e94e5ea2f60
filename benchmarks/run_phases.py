"""Where one run's wall time goes, without a profiler: a continual run against joint training.

    python benchmarks/run_phases.py 3                       # 3 timed rounds after a warm-up one
    python benchmarks/run_phases.py 3 model=tiny-clip pretrained=null image_size=32
    python benchmarks/run_phases.py 2 --config experiments/cifar10_proxy.yaml \
        --tuned experiments/results/cifar10_proxy_rerun_tune/tuned.yaml \
        data_root=/work/shared/data/cifar10                 # a run of a sweep config, its values
    python benchmarks/run_phases.py 3 --detail              # and the per-experience calls

The same two runs as ``bench_run.py`` (the embedded default, GCL memory 20 with checkpoints
against joint training of the same 225 steps, one thread, kernels pinned, no zero-shot floor),
each timed as ``execute_run``; the template's phases are timed by wrapping their methods
(nested rows are parts of the row below them; ``forward``, ``criterion`` and ``loader next``
include the evaluations' calls). Wrapping adds ~1 µs a call, against cProfile's several-fold
inflation of Python-heavy code, so the rows compare with what a run really spends. A phase that
a version of the code does not have is left out.
"""

from __future__ import annotations

import argparse
import collections
import functools
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

pin_cpu_kernels()  # as the command line does, before any tensor operation

import torch.utils.data.dataloader as dataloader  # noqa: E402
from avalanche.training.templates import base, base_sgd  # noqa: E402
from avalanche.training.templates.observation_type import batch_observation  # noqa: E402
from avalanche.training.templates.update_type import sgd_update  # noqa: E402

import avalanche_clip.pipeline.run as run_module  # noqa: E402
import avalanche_clip.pipeline.run_loop as run_loop  # noqa: E402
from avalanche_clip.cli import _config  # noqa: E402
from avalanche_clip.common.threads import apply_threads  # noqa: E402
from avalanche_clip.models.classifier import CLIPClassifier  # noqa: E402
from avalanche_clip.strategies.base import CLIPStrategyBase  # noqa: E402

warnings.filterwarnings("ignore")
spent: collections.defaultdict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def wrap(owner: object, name: str, label: str) -> None:
    """Add the time of every call of ``owner.name`` to ``spent[label]`` and count it in
    ``calls[label]`` (absent: nothing)."""
    if not hasattr(owner, name):
        return
    function = getattr(owner, name)

    @functools.wraps(function)
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started
            calls[label] += 1

    setattr(owner, name, timed)


PHASES = [
    (run_module, "prepare_run", "prepare_run"),
    (run_module, "fresh_clip", "  create / copy model"),
    (run_module, "create_clip", "  create / copy model"),
    (run_module, "apply_feature_cache", "  feature cache"),
    (run_module, "build_strategy", "  build_strategy"),
    (base.BaseTemplate, "train", "train (all)"),
    (base_sgd.BaseSGDTemplate, "_before_training_exp", "  before_training_exp"),
    (dataloader._BaseDataLoaderIter, "__next__", "    loader next"),
    (CLIPStrategyBase, "forward", "    forward"),
    (CLIPStrategyBase, "criterion", "    criterion"),
    (CLIPStrategyBase, "backward", "    backward"),
    (CLIPStrategyBase, "optimizer_step", "    optimizer_step"),
    (base_sgd.BaseSGDTemplate, "_after_training_iteration", "    after_training_iteration"),
    (sgd_update.SGDUpdate, "training_epoch", "  training epochs"),
    (base_sgd.BaseSGDTemplate, "_after_training_exp", "  after_training_exp"),
    (base.BaseTemplate, "eval", "eval (all)"),
    (base_sgd.BaseSGDTemplate, "_before_eval_exp", "  before_eval_exp"),
    (base_sgd.BaseSGDTemplate, "eval_epoch", "  eval epochs"),
    (run_loop, "checkpoint_payload", "checkpoint (main thread)"),
    (run_loop, "save_checkpoint", "checkpoint (main thread)"),
    (getattr(run_loop, "BackgroundWriter", object), "wait", "checkpoint (main thread)"),
    (run_loop.ContinualRun, "_commit", "records"),
]

# --detail: the per-experience calls, each counted wherever it is made (a row may include
# another: model_adaptation calls model.to; they are not nested under the rows above)
DETAIL = [
    (CLIPClassifier, "train", "model.train / eval"),
    (CLIPClassifier, "to", "model.to"),
    (batch_observation.BatchObservation, "model_adaptation", "model_adaptation"),
    (batch_observation.BatchObservation, "check_model_and_optimizer", "check_model_and_optimizer"),
    (base_sgd.BaseSGDTemplate, "_after_train_dataset_adaptation", "after_train_dataset_adaptation"),
    (base.BaseTemplate, "_before_training_exp", "plugins' before_training_exp"),
    (base.BaseTemplate, "_after_training_exp", "plugins' after_training_exp"),
    (base_sgd.BaseSGDTemplate, "_after_training_epoch", "after_training_epoch"),
    (base_sgd.BaseSGDTemplate, "_after_eval_iteration", "after_eval_iteration"),
    (CLIPStrategyBase, "_save_train_state", "save train flags (eval)"),
    (CLIPStrategyBase, "_load_train_state", "restore train flags (eval)"),
]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="timed rounds after a warm-up one")
    parser.add_argument("--config", type=Path, default=None,
                        help="a sweep config (default: the embedded default comparison)")
    parser.add_argument("--tuned", type=Path, default=None, help="its tuned.yaml, applied as its sweep does")
    parser.add_argument("--strategy", default="gcl", help="the continual run's method (default gcl)")
    parser.add_argument("--mem-size", type=int, default=20, help="its memory size (default 20)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache (default: a fresh one, warmed by the first round)")
    parser.add_argument("--detail", action="store_true",
                        help="also time the per-experience calls (model walks, plugins' hooks)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for both runs")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    rounds = args.rounds
    phases = PHASES + (DETAIL if args.detail else [])
    for owner, name, label in phases:
        wrap(owner, name, label)
    apply_threads(1)  # one thread, denormals flushed: as a run process computes
    work = Path(tempfile.mkdtemp(prefix="run_phases_"))
    common = ["seed=0", "threads=1", "progress=false", "zero_shot_floor=false",
              f"cache_dir={args.cache_dir or work / 'cache'}", *args.overrides]
    run = functools.partial(_config, args.config, sweep=False, tuned=args.tuned)
    configs = {
        "continual": run([f"strategy={args.strategy}", f"mem_size={args.mem_size}", "checkpoint=true", *common]),
        "joint": run(["strategy=joint", "mem_size=0", *common]),
    }
    means: dict[str, collections.defaultdict[str, float]] = {k: collections.defaultdict(float) for k in configs}
    for repeat in range(rounds + 1):  # the first round warms caches; the order alternates
        for name in (list(configs) if repeat % 2 else list(configs)[::-1]):
            spent.clear()
            started = time.perf_counter()
            run_module.execute_run(configs[name], work / f"{name}_{repeat}")
            if repeat:
                means[name]["execute_run"] += (time.perf_counter() - started) / rounds
                for label, seconds in spent.items():
                    means[name][label] += seconds / rounds
    labels = ["execute_run", *dict.fromkeys(label for _, _, label in phases)]
    print(f"| part (s, mean of {rounds}) | continual | joint |")
    print("|---|---:|---:|")
    for label in labels:
        if any(label in means[name] for name in configs):
            print(f"| {label} | {means['continual'][label]:.3f} | {means['joint'][label]:.3f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
