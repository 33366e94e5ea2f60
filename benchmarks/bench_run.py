"""Whole-run cost: a continual run against joint training of the same optimizer steps.

Both are runs of the embedded default comparison (digits, effnet-lite0-clip with its projections
trained on cached trunk features, GCL's tuned values): the continual run (default GCL, memory 20,
checkpoints on) trains 5 experiences with an evaluation and a record after each and a checkpoint after
each but the last (the final record finishes the run);
joint training takes the same optimizer steps in one pass and evaluates once. Each is timed as
``execute_run`` in a fresh run folder (build the model and stream, train, evaluate, record,
checkpoint; no zero-shot evaluation, which a sweep does once per seed), in one process with
one torch thread and denormals flushed, CPU kernels pinned, as the command line runs them, taking turns (alternating
which goes first) after one warm-up run of each;
the table gives the median of ``--repeats`` and the ratio measured in the same process.

    python benchmarks/bench_run.py --repeats 5

``--set key=value`` overrides the runs' config (as ``avalanche-clip run`` does), e.g. a tiny
model for a quick check: ``--set model=tiny-clip pretrained=null image_size=32``.
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

pin_cpu_kernels()  # as the command line does, before any tensor operation: the kernels sweeps run


from avalanche_clip.cli import _config  # noqa: E402
from avalanche_clip.common.threads import apply_threads  # noqa: E402
from avalanche_clip.pipeline.run import execute_run  # noqa: E402

warnings.filterwarnings("ignore")


def _time_run(config: dict, out: Path) -> tuple[float, float, list[dict]]:
    """(wall time, CPU time of the process — every thread —, records) of one run."""
    shutil.rmtree(out, ignore_errors=True)
    started, cpu = time.perf_counter(), time.process_time()
    records = execute_run(config, out)
    return time.perf_counter() - started, time.process_time() - cpu, records


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs the benchmark; returns the median times (s) and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", default="gcl", help="the continual run's strategy")
    parser.add_argument("--mem-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, after a warm-up")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="config overrides")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    apply_threads(1)  # one thread, denormals flushed: as a run process computes
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_run_"))
    common = [f"seed={args.seed}", "threads=1", "progress=false", "zero_shot_floor=false",
              f"cache_dir={work / 'cache'}", *args.set]
    configs = {
        "continual": _config(None, [f"strategy={args.strategy}", f"mem_size={args.mem_size}",
                                    "checkpoint=true", *common], sweep=False),
        "joint": _config(None, ["strategy=joint", "mem_size=0", *common], sweep=False),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    steps = {}
    for repeat in range(args.repeats + 1):  # the first round warms caches (features, imports)
        # alternate which goes first, so a change of the machine's load favours neither
        for name in (list(configs) if repeat % 2 else list(configs)[::-1]):
            elapsed, used, records = _time_run(configs[name], work / f"{name}_{repeat}")
            steps[name] = sum(r["optimizer_steps"] or 0 for r in records)
            if repeat:
                times[name].append(elapsed)
                cpu[name].append(used)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = medians["continual"] / medians["joint"]
    cpu_ratio = cpu_medians["continual"] / cpu_medians["joint"]
    print(f"\n{args.strategy} memory {args.mem_size} (checkpoints on) vs joint; "
          f"{args.repeats} timed runs each; torch threads 1; overrides {args.set or 'none'}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| run | optimizer steps | median wall time (s) | all (s) | median CPU time (s) |")
    print("|---|---:|---:|---|---:|")
    for name in configs:
        shown = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {steps[name]} | {medians[name]:.2f} | {shown} | {cpu_medians[name]:.2f} |")
    print(f"| continual / joint | | {ratio:.2f} | | {cpu_ratio:.2f} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    result = {"continual_s": medians["continual"], "joint_s": medians["joint"], "ratio": ratio,
              "cpu_ratio": cpu_ratio, "steps": steps, "times": times, "cpu_times": cpu}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
