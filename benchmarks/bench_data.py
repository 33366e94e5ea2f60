"""Images/s of the scenario loaders, with and without the decoded-image cache.

Reads a class-incremental ImageFolder root (default: the CIFAR-10 JPEG copy under the data root)
and times, on the train split with ``ToTensor()``:

- building the scenario (file scan only),
- decoding the whole split once into memory (``decode_cache=True``), and loading it back from a
  persisted ``.npy`` (``cache_dir``),
- reading items one by one, and through a DataLoader (batch 256, 0 and 2 workers), from the
  JPEG files and from the decoded array.

Usage::

    .venv/bin/python benchmarks/bench_data.py [--root DIR] [--items 10000] [--workers 0 2]

Prints one JSON record per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from avalanche_clip.scenarios import build_scenario, rebuild_scenario, unaugmented_dataset

REPO = Path(__file__).resolve().parents[1]


def _default_root() -> Path:
    return Path(os.environ.get("AVALANCHE_CLIP_DATA", REPO / ".." / "shared" / "data")) / "cifar10"


def _record(**kw) -> None:
    print(json.dumps(kw), flush=True)


def _items_per_s(ds, n: int) -> float:
    n = min(n, len(ds))
    step = max(1, len(ds) // n)  # spread over classes / files
    t = time.perf_counter()
    for i in range(0, step * n, step):
        ds[i]
    return n / (time.perf_counter() - t)


def _loader_per_s(ds, n: int, workers: int) -> float:
    loader = DataLoader(
        ds, batch_size=256, shuffle=True, num_workers=workers, collate_fn=ds.collate_fn
    )
    seen = 0
    t = time.perf_counter()
    for batch in loader:
        seen += len(batch[0])
        if seen >= n:
            break
    return seen / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=_default_root())
    p.add_argument("--items", type=int, default=10_000, help="items read per measurement")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument(
        "--transform",
        choices=["totensor", "clip224"],
        default="totensor",
        help="ToTensor() or a CLIP-style eval transform (resize 224, crop, normalize)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads in the main process (DataLoader workers use 1); with other "
        "jobs on a 2-core machine, 2 threads spin against each other and run ~5x slower",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tf = {"transform": args.transform, "threads": args.threads}
    eval_tf = None
    if args.transform == "clip224":
        from torchvision import transforms as T

        eval_tf = T.Compose(
            [
                T.Resize(224, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(224),
                T.ToTensor(),
                T.Normalize((0.481, 0.458, 0.408), (0.269, 0.261, 0.276)),
            ]
        )

    t = time.perf_counter()
    files = build_scenario("split-imagefolder", root=args.root)
    _record(
        what="build (file scan)",
        seconds=round(time.perf_counter() - t, 2),
        n=files.num_train_samples,
    )

    with tempfile.TemporaryDirectory() as cache_dir:
        t = time.perf_counter()
        cached = build_scenario(
            "split-imagefolder", root=args.root, decode_cache=True, cache_dir=cache_dir
        )
        s = time.perf_counter() - t
        _record(
            what="decode whole train+test once",
            seconds=round(s, 1),
            images_per_s=round((cached.num_train_samples + cached.num_test_samples) / s),
        )
        t = time.perf_counter()
        build_scenario("split-imagefolder", root=args.root, decode_cache=True, cache_dir=cache_dir)
        _record(what="build from persisted .npy cache", seconds=round(time.perf_counter() - t, 2))

        for name, bm in (("jpeg files", files), ("decoded cache", cached)):
            if eval_tf is not None:
                bm = rebuild_scenario(bm, train_transform=eval_tf, eval_transform=eval_tf)
            ds = unaugmented_dataset(bm, "train")
            _record(
                **tf,
                what=f"{name}: items one by one",
                images_per_s=round(_items_per_s(ds, args.items)),
            )
            for w in args.workers:
                _record(
                    **tf,
                    what=f"{name}: DataLoader batch 256, {w} workers",
                    images_per_s=round(_loader_per_s(ds, args.items, w)),
                )


if __name__ == "__main__":
    main()
