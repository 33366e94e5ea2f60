"""Many named tensors stored as one flat tensor per dtype, for checkpoints.

A model's state dict is mostly small tensors: effnet-lite0-clip's trained state is 151 of them,
147 BatchNorm statistics of ~1 KB and the two projections. ``torch.save`` writes every storage
as its own archive record (~90 µs each on one CPU thread, holding the GIL), so serialising that
dict cost ~15 ms a checkpoint, on the writer's thread beside the training loop; copying it
tensor by tensor another ~1 ms on the loop's. Packed, the same values are one concatenated
tensor per dtype (and device) plus a layout of names, offsets and shapes: ~5 ms for the whole
checkpoint, and one copy per dtype.

:func:`pack_tensors` copies (the result shares nothing with its input, as
:func:`~avalanche_clip.training.checkpoint_writer.snapshot` would) to the CPU; :func:`unpack_tensors`
gives back the mapping in its order, every tensor with its dtype, shape and values, as views of
the flat tensors, and with the ``_metadata`` (module versions, which ``load_state_dict``
reads) of a state dict that has it (a checkpoint's trained entries are a plain dict: none). The entry holds only tensors, ints, strings, lists and dicts, so it loads with
``torch.load(..., weights_only=True)``. Tensors that are not plain dense ones (sparse,
quantized) are stored as they are.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["PackedTensorsError", "pack_tensors", "unpack_tensors"]

_LOOSE = -1  # the group of a tensor stored as it is


def _packable(tensor: torch.Tensor) -> bool:
    return tensor.layout == torch.strided and not tensor.is_quantized


def pack_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A CPU copy of ``tensors`` as ``{"flat", "names", "groups", "offsets", "shapes", "loose",
    "metadata"}`` (see the module docstring)."""
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    entry: dict[str, Any] = {"flat": [], "names": [], "groups": [], "offsets": [], "shapes": [],
                             "loose": {}, "metadata": None}
    group_of: dict[tuple[torch.dtype, torch.device], int] = {}
    sizes: list[int] = []
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        entry["names"].append(name)
        entry["shapes"].append(list(tensor.shape))
        if not _packable(tensor):
            entry["groups"].append(_LOOSE)
            entry["offsets"].append(0)
            entry["loose"][name] = tensor.clone() if tensor.device.type == "cpu" else tensor.to("cpu", copy=True)
            continue
        key = (tensor.dtype, tensor.device)
        if key not in group_of:
            group_of[key] = len(group_of)
            groups[key] = []
            sizes.append(0)
        group = group_of[key]
        entry["groups"].append(group)
        entry["offsets"].append(sizes[group])
        sizes[group] += tensor.numel()
        groups[key].append(tensor.reshape(-1))
    for (dtype, device), parts in groups.items():
        if device.type == "cpu":
            entry["flat"].append(torch.cat(parts))  # a new tensor: nothing shared with the input
            continue
        # from an accelerator: each part copied into its place on the CPU, as a tensor-by-tensor
        # copy would (no whole-state temporary in the device's memory)
        flat = torch.empty(sum(p.numel() for p in parts), dtype=dtype)
        offset = 0
        for part in parts:
            flat[offset:offset + part.numel()].copy_(part)
            offset += part.numel()
        entry["flat"].append(flat)
    metadata = getattr(tensors, "_metadata", None)
    if metadata is not None:  # plain dicts of ints and strings
        entry["metadata"] = {prefix: dict(values) for prefix, values in metadata.items()}
    return entry


class PackedTensorsError(ValueError):
    """A packed entry whose layout does not fit its flat tensors (not written by :func:`pack_tensors`)."""


def unpack_tensors(entry: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """The mapping :func:`pack_tensors` was given (as CPU tensors; views of the flat ones).

    Raises :class:`PackedTensorsError` when ``entry``'s layout does not fit its tensors."""
    unpacked: OrderedDict[str, torch.Tensor] = OrderedDict()
    try:
        for name, group, offset, shape in zip(entry["names"], entry["groups"], entry["offsets"],
                                              entry["shapes"], strict=True):
            if group == _LOOSE:
                unpacked[name] = entry["loose"][name]
                continue
            size = math.prod(shape)
            flat = entry["flat"][group]
            if offset < 0 or offset + size > flat.numel():
                raise ValueError(f"{name!r} lies outside its flat tensor")
            unpacked[name] = flat[offset:offset + size].view(shape)
        metadata = entry["metadata"]
    except (KeyError, TypeError, IndexError, ValueError, RuntimeError) as err:
        raise PackedTensorsError(f"not a packed state: {type(err).__name__}: {err}") from err
    if metadata is not None:
        unpacked._metadata = OrderedDict(metadata)  # type: ignore[attr-defined]
    return unpacked
