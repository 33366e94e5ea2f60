"""Data-parallel training over several processes (``torchrun``), exact to float round-off.

Launch any run under ``torchrun``::

    torchrun --nproc_per_node 4 -m avalanche_clip run --config experiments/paper/cifar100_vitb16.yaml

Every process builds the same benchmark, model, replay memory and batch sampler (all seeded by
the run alone), so every process draws the same *global* batch of ``train_mb_size`` samples; each
takes its shard (rows ``rank, rank + W, ...``: :class:`ShardedBatchSampler`) and encodes only
those. The loss is the single-process loss of the global batch:

- GCL / GDRO gather the image features, label-prompt features, labels and sample ids of every
  shard (:func:`gather_rows`: the other shards detached, this shard's rows live), compute the
  loss and update their per-sample state on the global batch — the same computation, hence the
  same ``u``, ``v`` and class estimates, on every process;
- cross-entropy sums its shard's per-sample losses over the global batch size.

So each process's gradient is the part of the global gradient that flows through its own rows,
and their sum (:class:`GradientSumPlugin`, an all-reduce before every optimizer step) is the
single-process gradient: the result does not depend on the number of processes, to float
round-off. Random augmentation is drawn per item, seeded by the item's place in the global
batches (:mod:`avalanche_clip.training.seeded_items`), so it is the same as in one process; dropout in
a part that trains draws from each process's own stream (:func:`reseed_for_rank`) and is the
one random draw that differs. Every process evaluates the whole test set (the strategies'
``make_eval_dataloader``; Avalanche's would give each process a ``DistributedSampler`` share);
rank 0 alone writes the records and checkpoints, which hold every process's RNG state, so a
resumed run continues each stream. Backends: NCCL on CUDA (each process on
``cuda:<local rank>``), gloo on CPU. BatchNorm layers that train would normalise each shard by
its own statistics and are refused (:func:`check_batch_norm`; frozen ones are in eval mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from avalanche.core import SupervisedPlugin
from torch import nn
from torch.utils.data import Sampler

from avalanche_clip.training.batching import derived_seed
from avalanche_clip.training.seeding import capture_rng_state, seed_everything


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str) -> str:
    """Join the ``torchrun`` process group (once); returns this process's device.

    ``device="cuda"`` becomes ``cuda:<LOCAL_RANK>`` with NCCL; ``"cpu"`` uses gloo.
    """
    if not launched():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return device


def shutdown() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` (picklable) on every process: a collective, every process calls it;
    ``value`` itself in one process."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(rows: list[int], part: int | None = None, parts: int | None = None) -> list[int]:
    """Rows ``part, part + parts, ...`` of a global batch (this process's by default)."""
    part = rank() if part is None else part
    parts = world_size() if parts is None else parts
    return rows[part::parts]


def gather_rng_states() -> list[dict[str, Any]] | None:
    """Every process's RNG state in rank order (None in one process: a checkpoint takes its own)."""
    if world_size() == 1:
        return None
    states: list[Any] = [None] * world_size()
    dist.all_gather_object(states, capture_rng_state())
    return states


def reseed_for_rank(seed: int) -> None:
    """After the run is built (the same model on every process), give each process its own
    random stream for what follows — dropout in a part that trains — so shards do not draw
    alike (augmentation does not read it: :mod:`avalanche_clip.training.seeded_items`); deterministic for
    a (seed, rank)."""
    if world_size() == 1:
        return
    seed_everything(derived_seed(seed, "rank", rank()) % 2**31)


class ShardedBatchSampler(Sampler[list[int]]):
    """This process's shard of every global batch of ``sampler`` (see :func:`shard`)."""

    def __init__(self, sampler: Any, part: int | None = None, parts: int | None = None) -> None:
        self.sampler, self.part, self.parts = sampler, part, parts

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.sampler:
            yield shard(batch, self.part, self.parts)


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """The rows of every process, in rank order, with gradient through this process's rows only.

    ``local``: ``[b_r, ...]`` (shards may differ in length by one). Returns ``[Σ b_r, ...]``.
    """
    if world_size() == 1:
        return local
    sizes = [torch.zeros((), dtype=torch.long, device=local.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor(len(local), device=local.device))
    longest = int(max(sizes))
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: len(local)] = local.detach()
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    parts = [part[: int(n)] for part, n in zip(parts, sizes, strict=True)]
    parts[rank()] = local  # live: this process's rows keep their graph
    return torch.cat(parts)


def check_batch_norm(owner: str, model: nn.Module) -> None:
    """``ValueError`` naming a BatchNorm layer in training mode under several processes: it
    would normalise each process's shard by the shard's statistics and keep per-process running
    statistics, so the processes' models would differ from one another and from one process
    (frozen parts are in eval mode: :func:`avalanche_clip.models.trainable.freeze_frozen_modules`)."""
    if world_size() == 1:
        return
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    training = [name for name, m in model.named_modules() if isinstance(m, norms) and m.training]
    if training:
        raise ValueError(
            f"{owner} under {world_size()} processes: {len(training)} BatchNorm layer(s) train "
            f"(first: {training[0]}), whose statistics would be each process's shard's, so the "
            "processes' models would differ; freeze them (trainable: projections or text) or run "
            "in one process"
        )


class GradientSumPlugin(SupervisedPlugin, supports_distributed=True):  # the same on every process
    """Sums the gradients of every process before each optimizer step (module docstring), and
    refuses BatchNorm layers that train (:func:`check_batch_norm`) before an experience's first
    step, once the model is in training mode."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        check_batch_norm(type(strategy).__name__, strategy.model)

    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        if world_size() == 1:
            return
        trained = [p for p in strategy.model.parameters() if p.requires_grad]
        if not trained:
            return
        device = trained[0].device
        # A parameter no process's loss reached (GCL never reads CLIP's logit scale) keeps no
        # gradient, as in one process, so weight decay does not move it; one some process's
        # shard did not reach gets zeros there.
        reached = torch.tensor([float(p.grad is not None) for p in trained], device=device)
        dist.all_reduce(reached, op=dist.ReduceOp.MAX)
        trained = [p for p, hit in zip(trained, reached.tolist(), strict=True) if hit]
        for parameter in trained:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        if not trained:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in trained])  # one all-reduce, not one each
        dist.all_reduce(flat)
        offset = 0
        for parameter in trained:
            n = parameter.grad.numel()
            parameter.grad.copy_(flat[offset : offset + n].view_as(parameter.grad))
            offset += n
