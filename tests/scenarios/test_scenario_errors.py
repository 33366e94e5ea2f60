"""Bad input gives a clear error that says what was expected (never a silently empty stream)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from avalanche_clip.scenarios import (
    DataLayoutError,
    ImageReadError,
    MissingDataError,
    build_scenario,
)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("split-cifar100", "download=True"),
        ("split-imagenet", "image-net.org"),
        ("split-imagefolder", "ImageFolder"),
        ("domainnet", "ai.bu.edu/M3SDA"),
        ("domain-folder", "_train.txt"),
    ],
)
def test_missing_root_says_layout_and_how_to_get(tmp_path, name, hint):
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingDataError) as err:
        build_scenario(name, root=missing, n_experiences=1)
    msg = str(err.value)
    assert (
        str(missing) in msg and "does not exist" in msg and "Expected layout" in msg and hint in msg
    )


@pytest.mark.parametrize("name", ["split-cifar100", "split-imagenet", "domainnet"])
def test_no_root_given(name):
    with pytest.raises(ValueError, match="needs root="):
        build_scenario(name)


def test_cifar100_url_in_message(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with pytest.raises(MissingDataError, match=r"cifar-100-python\.tar\.gz"):
        build_scenario("split-cifar100", root=tmp_path)


def test_imagefolder_without_train_dir(tmp_path):
    (tmp_path / "images" / "cat").mkdir(parents=True)
    with pytest.raises(
        DataLayoutError, match=r"(?s)train is missing.*<root>/train/<class>/<image>"
    ):
        build_scenario("split-imagefolder", root=tmp_path)


def test_imagefolder_empty_class_folder(fake_imagefolder):
    (fake_imagefolder / "train" / "eel").mkdir()
    (fake_imagefolder / "train" / "eel" / "notes.txt").write_text("no images here")
    with pytest.raises(DataLayoutError, match="eel has no image files"):
        build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)


def test_imagefolder_class_mismatch(fake_imagefolder):
    (fake_imagefolder / "test" / "dog").rename(fake_imagefolder / "test" / "wolf")
    with pytest.raises(
        DataLayoutError,
        match=r"same class folders.*only in train: \['dog'\].*only in test: \['wolf'\]",
    ):
        build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)


def test_domain_folder_without_split_files(tmp_path):
    (tmp_path / "photo" / "dog").mkdir(parents=True)
    with pytest.raises(DataLayoutError, match=r"no <domain>_train\.txt"):
        build_scenario("domain-folder", root=tmp_path)


def test_split_file_names_missing_image(fake_domainnet):
    gone = fake_domainnet / "real" / "zebra" / "real_002_train01.png"
    gone.unlink()
    with pytest.raises(MissingDataError) as err:
        build_scenario("domainnet", root=fake_domainnet)
    msg = str(err.value)
    assert "1 image(s) named in" in msg and "real_train.txt" in msg and str(gone) in msg


def test_domainnet_missing_domain(fake_domainnet):
    (fake_domainnet / "quickdraw_train.txt").unlink()
    with pytest.raises(
        DataLayoutError, match=r"(?s)domains \['quickdraw'\] are missing.*ai\.bu\.edu"
    ):
        build_scenario("domainnet", root=fake_domainnet)


def test_missing_test_split_file(fake_domainnet):
    (fake_domainnet / "sketch_test.txt").unlink()
    with pytest.raises(MissingDataError, match=r"sketch_test\.txt does not exist"):
        build_scenario("domainnet", root=fake_domainnet)


def test_malformed_split_line(fake_domainnet):
    f = fake_domainnet / "clipart_test.txt"
    f.write_text(f.read_text() + "clipart/zebra/broken.png\n")
    with pytest.raises(DataLayoutError, match=r"clipart_test\.txt:4: expected"):
        build_scenario("domainnet", root=fake_domainnet)


def test_empty_split_file(fake_domainnet):
    (fake_domainnet / "real_test.txt").write_text("\n")
    with pytest.raises(DataLayoutError, match=r"real_test\.txt lists no images"):
        build_scenario("domainnet", root=fake_domainnet)


def test_conflicting_label(fake_domainnet):
    f = fake_domainnet / "painting_train.txt"
    f.write_text(
        f.read_text().replace(
            "painting/zebra/painting_002_train00.png 2", "painting/zebra/painting_002_train00.png 0"
        )
    )
    with pytest.raises(
        DataLayoutError, match="label 0 is class folder 'zebra' here but 'aircraft_carrier'"
    ):
        build_scenario("domainnet", root=fake_domainnet)


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return path


def test_corrupt_image_named_when_read(fake_imagefolder):
    bad = _corrupt(fake_imagefolder / "train" / "bee" / "1.png")
    bm = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1)
    ds = bm.train_stream[0].dataset
    position = list(ds.sample_idx).index(4)  # bee/1.png is the 5th file
    with pytest.raises(ImageReadError, match=f"cannot decode image '{bad}'"):
        ds[position]


def test_truncated_jpeg_named_when_read(fake_imagenet):
    f = next((fake_imagenet / "val" / "n01443537").iterdir())
    f.write_bytes(f.read_bytes()[:200])
    bm = build_scenario("split-imagenet", root=fake_imagenet, n_experiences=1)
    with pytest.raises(ImageReadError, match=str(f.name)):
        [bm.test_stream[0].dataset[i] for i in range(len(bm.test_stream[0].dataset))]


def test_verify_reports_all_bad_files_upfront(fake_imagefolder):
    a = _corrupt(fake_imagefolder / "train" / "bee" / "1.png")
    b = _corrupt(fake_imagefolder / "train" / "dog" / "0.png")
    with pytest.raises(ImageReadError) as err:
        build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=1, verify=True)
    msg = str(err.value)
    assert "2 of 12 images cannot be read" in msg and str(a) in msg and str(b) in msg


def test_decode_cache_names_corrupt_file(fake_imagefolder):
    bad = _corrupt(fake_imagefolder / "test" / "ant" / "0.png")
    with pytest.raises(ImageReadError, match=str(bad)):
        build_scenario(
            "split-imagefolder", root=fake_imagefolder, n_experiences=1, decode_cache=True
        )


def test_cifar100_missing_meta(fake_cifar100):
    (fake_cifar100 / "cifar-100-python" / "meta").unlink()
    with pytest.raises(
        MissingDataError, match=r"(?s)cifar-100-python/meta does not exist.*download=True"
    ):
        build_scenario("split-cifar100", root=fake_cifar100)


def test_cifar100_not_a_pickle(fake_cifar100):
    (fake_cifar100 / "cifar-100-python" / "train").write_bytes(b"garbage")
    with pytest.raises(DataLayoutError, match=r"cifar-100-python/train is not a CIFAR-100 pickle"):
        build_scenario("split-cifar100", root=fake_cifar100)


def test_cifar100_wrong_shape(fake_cifar100):
    path = fake_cifar100 / "cifar-100-python" / "test"
    with open(path, "wb") as f:
        pickle.dump({"data": [[1, 2, 3]], "fine_labels": [0]}, f)
    with pytest.raises(DataLayoutError, match=r"expected \(N, 3072\)"):
        build_scenario("split-cifar100", root=fake_cifar100)


def test_imagenet_flat_val_folder_points_to_valprep(fake_imagenet):
    val = fake_imagenet / "val"
    for f in list(val.rglob("*.JPEG")):
        f.rename(val / f.name)
    for d in [d for d in val.iterdir() if d.is_dir()]:
        d.rmdir()
    with pytest.raises(DataLayoutError, match=r"(?s)val has no class folders.*valprep"):
        build_scenario("split-imagenet", root=fake_imagenet, n_experiences=1)
