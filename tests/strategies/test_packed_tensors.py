"""Checkpoints' packed state: one flat tensor per dtype gives back every tensor exactly, in order,
with the state dict's metadata, through torch.save / torch.load(weights_only=True)."""

from __future__ import annotations

import io
from collections import OrderedDict

import torch
from torch import nn

from avalanche_clip.training.packed_tensors import pack_tensors, unpack_tensors


def _mixed() -> OrderedDict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 3, generator=g)
    return OrderedDict([
        ("w", torch.randn(3, 5, generator=g)),
        ("steps", torch.tensor(7)),  # 0-dim int64
        ("mask", torch.rand(6, generator=g) > 0.5),
        ("half", torch.randn(2, 2, generator=g).to(torch.bfloat16)),
        ("empty", torch.empty(0, 3)),
        ("transposed", base.t()),  # not contiguous
        ("expanded", torch.randn(1, 3, generator=g).expand(4, 3)),
        ("double", torch.randn(5, generator=g, dtype=torch.float64)),
        ("complex", torch.randn(3, generator=g, dtype=torch.complex64)),
        ("sparse", torch.eye(3).to_sparse()),  # kept as it is
        ("w2", torch.randn(2, generator=g)),
    ])


def _assert_same(got, expected) -> None:
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        value = got[name]
        assert value.dtype == tensor.dtype and value.shape == tensor.shape, name
        if tensor.is_sparse:
            assert torch.equal(value.to_dense(), tensor.to_dense()), name
        else:
            assert torch.equal(value, tensor), name


def test_unpacked_equals_packed_in_order_and_dtype():
    tensors = _mixed()
    _assert_same(unpack_tensors(pack_tensors(tensors)), tensors)


def test_the_pack_is_a_copy():
    tensors = _mixed()
    expected = OrderedDict((k, v.clone()) for k, v in tensors.items())
    packed = pack_tensors(tensors)
    for name in ("w", "double", "w2"):
        tensors[name].add_(1.0)
    tensors["steps"].add_(1)
    _assert_same(unpack_tensors(packed), expected)


def test_a_state_dict_survives_weights_only_loading_with_its_metadata():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    model(torch.randn(8, 3))  # running statistics and num_batches_tracked move
    state = model.state_dict()
    stream = io.BytesIO()
    torch.save({"model": pack_tensors(state)}, stream)
    stream.seek(0)
    loaded = unpack_tensors(torch.load(stream, weights_only=True)["model"])
    _assert_same(loaded, state)
    assert loaded._metadata == state._metadata  # BatchNorm's version, read by load_state_dict
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    fresh.load_state_dict(loaded)
    _assert_same(fresh.state_dict(), state)


def test_one_flat_tensor_per_dtype():
    packed = pack_tensors(_mixed())
    dtypes = [flat.dtype for flat in packed["flat"]]
    assert sorted(map(str, dtypes)) == sorted(map(str, {torch.float32, torch.int64, torch.bool,
                                                         torch.bfloat16, torch.float64,
                                                         torch.complex64}))
    assert list(packed["loose"]) == ["sparse"]
