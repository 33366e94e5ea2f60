"""Image folders that used to give silently wrong data: symbolic links that loop, high bit-depth
images, a DomainNet test split missing a class."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avalanche_clip.scenarios import DataLayoutError, ImageReadError, build_scenario, read_image
from avalanche_clip.scenarios.errors import DataLayoutWarning


def _class_files(bm, class_name: str) -> list[str]:
    ds = bm.source.train.dataset
    label = bm.source.extra["class_folders"].index(class_name)
    return [p for p, t in zip(ds.paths, ds.targets, strict=True) if t == label]


def test_a_link_back_to_the_parent_folder_is_skipped_with_a_warning(fake_imagefolder):
    bee = fake_imagefolder / "train" / "bee"
    os.symlink("..", bee / "loop")  # bee/loop/ant/0.png, bee/loop/bee/loop/... with links followed
    with pytest.warns(DataLayoutWarning, match=rf"skipped the link {bee / 'loop'} -> \.\.: it leads to "):
        bm = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)
    assert _class_files(bm, "bee") == [str(bee / f"{i}.png") for i in range(3)]
    assert len(bm.source.train.dataset) == 12  # 4 classes x 3, nothing pulled in twice


def test_a_link_to_itself_is_skipped_and_a_link_elsewhere_is_followed(fake_imagefolder, tmp_path):
    ant = fake_imagefolder / "train" / "ant"
    extra = tmp_path / "more_ants"
    extra.mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(extra / "x.png")
    os.symlink(ant, ant / "again")
    os.symlink(extra, ant / "more")
    with pytest.warns(DataLayoutWarning, match="again"):
        bm = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)
    assert _class_files(bm, "ant") == [str(ant / f"{i}.png") for i in range(3)] + [str(ant / "more" / "x.png")]


def test_folders_without_links_give_no_warning(fake_imagefolder):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataLayoutWarning)
        build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)


def _png16(path: Path, pixels: np.ndarray, color_type: int) -> Path:
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB), per the PNG spec."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[i].astype(">u2").tobytes() for i in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


RAMP16 = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).astype(np.uint16)  # 0 .. 65,520


def _rgb(gray8: np.ndarray) -> np.ndarray:
    return np.repeat(gray8[..., None], 3, axis=2)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    path = _png16(tmp_path / "g16.png", RAMP16, color_type=0)
    assert Image.open(path).mode == "I;16"
    assert np.asarray(Image.open(path).convert("RGB")).min() == 0  # what Pillow alone gives ...
    assert (np.asarray(Image.open(path).convert("RGB"))[1:] == 255).all()  # ... white but row 0
    expected = np.rint(RAMP16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(read_image(str(path))), _rgb(expected))


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    pixels = np.stack([RAMP16, 65535 - RAMP16, np.full_like(RAMP16, 32768)], axis=-1)
    path = _png16(tmp_path / "rgb16.png", pixels, color_type=2)
    np.testing.assert_array_equal(np.asarray(read_image(str(path))), (pixels >> 8).astype(np.uint8))


@pytest.mark.parametrize("dtype, full", [(np.int32, 2**31 - 1), (np.uint16, 65535)])
def test_integer_tiffs_are_scaled_by_their_sample_range(tmp_path, dtype, full):
    values = (np.arange(64).reshape(8, 8) / 63 * full).astype(dtype)
    path = tmp_path / "i.tif"
    Image.fromarray(values).save(path)
    expected = np.rint(values.astype(np.float64) * 255 / full).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(read_image(str(path))), _rgb(expected))


def test_float_tiff_in_unit_range_is_scaled_and_outside_it_refused(tmp_path):
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    path = tmp_path / "f.tif"
    Image.fromarray(values).save(path)
    assert np.asarray(Image.open(path).convert("RGB")).max() <= 1  # Pillow alone: black
    np.testing.assert_array_equal(np.asarray(read_image(str(path))),
                                  _rgb(np.rint(values.astype(np.float64) * 255).astype(np.uint8)))
    Image.fromarray(values * 300).save(path)
    with pytest.raises(ImageReadError, match=rf"cannot use image '{path}': F image with values in \[0, 300\]"):
        read_image(str(path))


def test_16_bit_images_in_a_scenario(fake_imagefolder):
    png = fake_imagefolder / "train" / "ant" / "0.png"
    _png16(png, RAMP16, color_type=0)
    bm = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)
    image, _ = bm.source.train.dataset[0]
    assert np.asarray(image)[3, 3, 0] == round(int(RAMP16[3, 3]) * 255 / 65535) < 255


def test_domainnet_test_split_missing_a_class_is_refused(fake_domainnet):
    test = fake_domainnet / "sketch_test.txt"
    test.write_text("".join(line + "\n" for line in test.read_text().splitlines() if "/zebra/" not in line))
    with pytest.raises(DataLayoutError, match=r"sketch_train\.txt and sketch_test\.txt must list the same "
                                              r"classes; only in train: \['zebra'\], only in test: \[\]"):
        build_scenario("domainnet", root=fake_domainnet)
