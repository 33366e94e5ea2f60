"""A 20000×20000 PNG (Pillow's decompression-bomb limit) is one line naming the image and the
limit: before training when the images are checked upfront (``verify``), else where the run
reads it, after the finished experiences' records, which stay."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from cli_fixtures import cli, read_jsonl, tiny_config, write_config, write_domain_tree
from test_cli_faults import _refused

from avalanche_clip.scenarios import ImageReadError, build_scenario


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A valid black 1-bit PNG of ``side``² pixels (400 M at 20000): 50 MB of rows, ~50 kB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte "none", then the packed bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def bomb_tree(tmp_path):
    """A DomainNet-layout tree whose second domain's training image ``photo/dog/0.png`` is a bomb."""
    root = write_domain_tree(tmp_path / "domains", per_class=3)
    return root, write_bomb_png(root / "photo" / "dog" / "0.png")


def _expected(image: Path) -> tuple[str, ...]:
    return (f"cannot use image {str(image)!r}: Image size (400000000 pixels) exceeds limit of",
            "twice PIL.Image.MAX_IMAGE_PIXELS (89478485) pixels", "Downscale or remove it")


def test_a_bomb_met_mid_run_is_one_line_naming_it_after_the_kept_records(bomb_tree, tmp_path, capsys):
    root, bomb = bomb_tree
    config = write_config(tmp_path / "run.yaml", tiny_config(  # trainable all: images read as trained on
        tmp_path / "cache", scenario="domain-folder", data_root=str(root), n_experiences=None,
        scenario_options={}, strategy="naive", mem_size=0, trainable="all"))

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")

    _refused(code, stderr, *_expected(bomb))
    assert [r["experience"] for r in read_jsonl(tmp_path / "out" / "results.jsonl")] == [0]


def test_a_bomb_is_refused_before_training_when_images_are_checked_upfront(bomb_tree, tmp_path, capsys):
    root, bomb = bomb_tree
    with pytest.raises(ImageReadError, match="1 of 6 images cannot be read") as refused:
        build_scenario("domain-folder", root=root, verify=True)
    assert all(part in str(refused.value) for part in _expected(bomb))

    config = write_config(tmp_path / "run.yaml", tiny_config(  # the feature cache reads every image first
        tmp_path / "cache", scenario="domain-folder", data_root=str(root), n_experiences=None,
        scenario_options={}))
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")
    _refused(code, stderr, *_expected(bomb))
    assert not (tmp_path / "out" / "results.jsonl").exists()
