"""How GCL / GDRO cost grows with the number of training samples N and of classes K.

1. N (the loss keeps ``log_u``, ``log_v`` per sample; GDRO also ``z`` per class): state bytes,
   checkpoint bytes, and forward+backward time of one batch with ids drawn from ``[0, N)``,
   for N up to ImageNet's 1.28 M.
2. K (ImageNet's 1,000 prompts): encoding every class prompt once (the eval cache), one training
   step of GCL (which encodes only the batch's classes) against cross-entropy over all K seen
   classes (which encodes all K prompts every step) while the text tower trains, and the memory
   that K prompts take.

    python benchmarks/bench_scaling.py --device cpu
    python benchmarks/bench_scaling.py --device cuda --text-model ViT-B-16
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable

warnings.filterwarnings("ignore")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scaling_in_n(device: torch.device, batch: int, dim: int, repeats: int) -> None:
    print(f"\n### Loss state vs N (B = {batch}, D = {dim}, K = 1000, {device.type})\n")
    print("| N | state (MB) | checkpoint (MB) | GCL step (ms) | GDRO step (ms) |")
    print("|---:|---:|---:|---:|---:|")
    generator = torch.Generator().manual_seed(0)
    for n in (10_000, 100_000, 1_000_000, 1_281_167):
        losses = {"gcl": GCLLoss(num_samples=n).to(device),
                  "gdro": GDROLoss(num_samples=n, num_classes=1000).to(device)}
        state_bytes = sum(b.numel() * b.element_size() for b in losses["gdro"].buffers())
        buffer = io.BytesIO()
        torch.save(losses["gdro"].state_dict(), buffer)
        times = {}
        for name, loss in losses.items():
            image = F.normalize(torch.randn(batch, dim, device=device), dim=1).requires_grad_()
            prompts = F.normalize(torch.randn(1000, dim, device=device), dim=1)
            labels = torch.randint(0, 1000, (batch,), generator=generator).to(device)

            def step(loss=loss, image=image, prompts=prompts, labels=labels, n=n) -> None:  # type: ignore[no-untyped-def]
                # B distinct ids at a random offset: O(B), unlike a permutation of all N
                start = int(torch.randint(0, n - batch, (1,), generator=generator))
                ids = torch.arange(start, start + batch, device=device)
                loss(image, prompts[labels], labels, ids).backward()

            times[name] = _median_time(step, repeats, device)
        print(f"| {n:,} | {state_bytes / 2**20:.1f} | {buffer.tell() / 2**20:.1f} | "
              f"{1000 * times['gcl']:.2f} | {1000 * times['gdro']:.2f} |")


def scaling_in_k(device: torch.device, text_model: str, batch: int, repeats: int) -> None:
    model, _, _, tokenizer = create_clip(text_model, device=device)
    set_trainable(model, "text")
    print(f"\n### Prompts vs K (text tower of {text_model}, trainable; batch {batch}; {device.type})\n")
    print("| K | encode all K prompts (s) | prompt tokens (MB) | GCL step, batch classes (ms) "
          "| CE step, all K classes (ms) | CE / GCL |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in (10, 100, 1000):
        names = [f"class number {i}" for i in range(k)]
        classifier = CLIPClassifier(model, tokenizer, names).to(device)
        classifier.mark_seen(range(k))
        classifier.eval()
        with torch.no_grad():
            encode_all = _median_time(lambda c=classifier, k=k: c._encode_prompts(torch.arange(k, device=device)),
                                      max(1, repeats // 5), device)
        classifier.train()
        labels = torch.randint(0, k, (batch,), device=device)
        image = F.normalize(torch.randn(batch, model.text_projection.shape[1], device=device), dim=1)
        loss = GCLLoss(num_samples=batch).to(device)

        def gcl_step(c=classifier, labels=labels, image=image, loss=loss) -> None:  # type: ignore[no-untyped-def]
            classes, inverse = torch.unique(labels, return_inverse=True)
            text = c.class_embeddings(classes)[inverse]
            loss(image, text, labels, torch.arange(batch, device=device)).backward()

        def ce_step(c=classifier, labels=labels, image=image) -> None:  # type: ignore[no-untyped-def]
            logits = c.logit_scale() * image @ c.class_embeddings().t()
            F.cross_entropy(logits, labels).backward()

        gcl = _median_time(gcl_step, repeats, device)
        ce = _median_time(ce_step, repeats, device)
        tokens = classifier.prompt_tokens.numel() * classifier.prompt_tokens.element_size()
        print(f"| {k:,} | {encode_all:.2f} | {tokens / 2**20:.2f} | {1000 * gcl:.1f} | "
              f"{1000 * ce:.1f} | {ce / gcl:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--text-model", default="effnet-lite0-clip",
                        help="whose text tower encodes the prompts (random weights)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    scaling_in_n(device, args.batch, args.dim, args.repeats)
    scaling_in_k(device, args.text_model, args.batch, args.repeats)


if __name__ == "__main__":
    main()
