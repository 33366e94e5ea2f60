"""Wall time of an offline proxy sweep with and without the frozen-trunk feature cache.

1. The whole sweep of the config (every method × memory size × seed) from a cold cache: a fresh
   cache folder and a fresh output folder, so the time includes encoding every image once.
2. One run of the sweep (``--probe``, default GCL at the largest memory, seed 0) with
   ``feature_cache=false`` and with the (now warm) cache, in the same process: the ratio says
   what every run would cost without the cache. Running the whole uncached sweep would take
   hours here, so its time is estimated as (number of runs) × (the uncached run's time), and
   labelled as such.

    python benchmarks/bench_sweep.py --config experiments/cifar10_proxy.yaml
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from avalanche_clip.features import clear_memory
from avalanche_clip.pipeline.config import load_yaml, resolve_config
from avalanche_clip.pipeline.run import execute_run
from avalanche_clip.pipeline.sweep import plan_sweep, run_sweep

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/cifar10_proxy.yaml")
    parser.add_argument("--probe", default="gcl", help="strategy of the with/without-cache run")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_sweep_"))
    shutil.rmtree(work, ignore_errors=True)
    config = resolve_config([load_yaml(args.config), {"progress": False, "cache_dir": str(work / "cache")}],
                            sweep=True)
    plan = plan_sweep(config)
    clear_memory()
    start = time.perf_counter()
    run_sweep(config, work / "sweep", progress=False)
    sweep_time = time.perf_counter() - start

    probe = max((r for r in plan.runs if r.strategy == args.probe and r.seed == plan.runs[0].seed),
                key=lambda r: r.mem_size)
    timings = {}
    for cache in ("auto", False):
        clear_memory()
        run = probe.replace(feature_cache=cache, zero_shot_floor=False, checkpoint=False)
        start = time.perf_counter()
        execute_run(run, work / f"probe_{cache}")
        timings[cache] = time.perf_counter() - start
    ratio = timings[False] / timings["auto"]
    print(f"\nconfig {args.config}: {len(plan.runs)} runs; {os.cpu_count()} CPUs\n")
    print("| measurement | wall time |")
    print("|---|---:|")
    print(f"| whole sweep, cold feature cache (encoding included) | {sweep_time / 60:.1f} min |")
    print(f"| one {args.probe} run (mem {probe['mem_size']}), warm cache | {timings['auto']:.1f} s |")
    print(f"| the same run without the cache | {timings[False]:.1f} s |")
    print(f"| without / with cache, per run | {ratio:.1f}× |")
    print(f"| whole sweep without the cache (estimate: runs × uncached run) | "
          f"{len(plan.runs) * timings[False] / 3600:.1f} h |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
