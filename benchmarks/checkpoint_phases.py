"""Where a continual run's checkpoints spend their time, on both threads.

The embedded default's GCL run (memory 20, checkpoints on, one torch thread), timed as
``execute_run`` after a warm-up run, with the checkpoint's parts wrapped: the snapshot the
training thread takes (``checkpoint_payload``), its waits for the writer thread
(``BackgroundWriter.wait``), and on the writer thread ``torch.save`` and the ``fsync`` calls
(every atomic write's, the records' included). A part on the writer thread costs the run what it
holds the GIL for, and its last write what the run waits for at the end.

    python benchmarks/checkpoint_phases.py 5          # 5 timed runs
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

pin_cpu_kernels()  # as the command line does, before any tensor operation

from run_phases import calls, spent, wrap  # noqa: E402  (this script's folder is on sys.path)

import avalanche_clip.common.atomic as atomic  # noqa: E402
import avalanche_clip.pipeline.run_loop as run_loop  # noqa: E402
import avalanche_clip.training.checkpoint as checkpoint  # noqa: E402
from avalanche_clip.cli import _config  # noqa: E402
from avalanche_clip.common.threads import apply_threads  # noqa: E402
from avalanche_clip.pipeline.run import execute_run  # noqa: E402
from avalanche_clip.training.checkpoint_writer import BackgroundWriter  # noqa: E402

warnings.filterwarnings("ignore")


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 5
    wrap(run_loop, "checkpoint_payload", "checkpoint_payload (training thread)")
    wrap(BackgroundWriter, "wait", "waits for the writer (training thread)")
    wrap(checkpoint.torch, "save", "torch.save (writer thread)")
    wrap(atomic.os, "fsync", "fsync (writer thread; records: training thread)")
    apply_threads(1)
    work = Path(tempfile.mkdtemp(prefix="checkpoint_phases_"))
    config = _config(None, ["strategy=gcl", "mem_size=20", "checkpoint=true", "seed=0", "threads=1",
                            "progress=false", "zero_shot_floor=false", f"cache_dir={work / 'cache'}"],
                     sweep=False)
    execute_run(config, work / "warm-up")
    spent.clear()
    calls.clear()
    for i in range(runs):
        execute_run(config, work / f"run{i}")
    print(f"\n{runs} runs of gcl m20 (5 experiences), one torch thread\n")
    print("| part | ms a run | calls a run |")
    print("|---|---:|---:|")
    for label, seconds in spent.items():
        print(f"| {label} | {seconds / runs * 1e3:.1f} | {calls[label] / runs:g} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
