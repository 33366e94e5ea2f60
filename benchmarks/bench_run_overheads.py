"""A continual run's per-experience costs, each against the way it was done before, in one process.

On the embedded default's model (effnet-lite0-clip, projections trained, features cached) after
one trained experience of GCL, memory 20, one torch thread:

- ``CLIPClassifier.train(True)`` / ``eval()`` from their remembered plan
  (``avalanche_clip/models/train_flags.py``) against the calls they replay (``nn.Module.train``
  and refreezing the frozen parts), which the run makes ~3 times an experience;
- restoring the flags after an evaluation (``restore_train_modes``) against Avalanche's loop
  (``layer.train(mode)`` on every named module);
- serialising a checkpoint (``torch.save`` into memory, what the writer thread does while the
  next experience trains) with the model's state packed into one tensor per dtype
  (``avalanche_clip/training/packed_tensors.py``) against the state dict as it is, and the
  loop thread's part (``checkpoint_payload``).

    python benchmarks/bench_run_overheads.py
"""

from __future__ import annotations

import io
import time
import warnings

import torch

from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

pin_cpu_kernels()  # as the command line does, before any tensor operation

from torch import nn  # noqa: E402

from avalanche_clip.cli import _config  # noqa: E402
from avalanche_clip.common.threads import apply_threads  # noqa: E402
from avalanche_clip.pipeline.run import prepare_run  # noqa: E402
from avalanche_clip.training.checkpoint import checkpoint_payload  # noqa: E402
from avalanche_clip.training.packed_tensors import unpack_tensors  # noqa: E402
from avalanche_clip.training.train_modes import restore_train_modes  # noqa: E402

warnings.filterwarnings("ignore")


def per_call_ms(function, repeats: int = 200) -> float:  # type: ignore[no-untyped-def]
    function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats * 1e3


def _avalanche_restore(model: nn.Module, modes: dict[str, bool]) -> None:
    for name, layer in model.named_modules():
        layer.train(modes.get(name, True))


def main() -> None:
    apply_threads(1)
    config = _config(None, ["strategy=gcl", "mem_size=20", "seed=0", "threads=1", "progress=false",
                            "zero_shot_floor=false", "checkpoint=true"], sweep=False)
    prepared = prepare_run(config)
    strategy, classifier = prepared.strategy, prepared.classifier
    strategy.train(prepared.benchmark.train_stream[0], eval_streams=[])
    classifier.train(True)
    modes = {name: layer.training for name, layer in classifier.named_modules()}

    payload = checkpoint_payload(strategy=strategy, experience=0, config={})
    packed = {**payload, "strategy": {**payload["strategy"], "frozen": payload["strategy"]["frozen"].entry()}}
    unpacked = {**packed, "strategy": {**packed["strategy"], "model": unpack_tensors(packed["strategy"]["model"])}}

    rows = [
        ("train(True)", per_call_ms(lambda: classifier._set_train_flags(True)),
         per_call_ms(lambda: classifier.train(True))),
        ("eval()", per_call_ms(lambda: classifier._set_train_flags(False)),
         per_call_ms(lambda: classifier.train(False))),
        ("restore flags after an evaluation", per_call_ms(lambda: _avalanche_restore(classifier, modes), 50),
         per_call_ms(lambda: restore_train_modes(classifier, modes))),
        ("torch.save of a checkpoint (writer thread)", per_call_ms(lambda: torch.save(unpacked, io.BytesIO()), 50),
         per_call_ms(lambda: torch.save(packed, io.BytesIO()), 50)),
    ]
    payload_ms = per_call_ms(lambda: checkpoint_payload(strategy=strategy, experience=0, config={}), 50)
    n_tensors = len(unpacked["strategy"]["model"])
    print(f"\nmodules {len(list(classifier.modules()))}, model state tensors {n_tensors} "
          f"(packed: {len(packed['strategy']['model']['flat'])}); one torch thread\n")
    print("| per call (ms) | before | now | before / now |")
    print("|---|---:|---:|---:|")
    for name, before, now in rows:
        print(f"| {name} | {before:.2f} | {now:.2f} | {before / now:.1f} |")
    print(f"| checkpoint_payload (loop thread, packed) | | {payload_ms:.2f} | |")


if __name__ == "__main__":
    main()
