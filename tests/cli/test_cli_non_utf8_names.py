"""File and class folder names that are not UTF-8 (valid on Linux, where names are bytes) are
read like any other: the digest memo, the data fingerprint, the prompts and the records take
them, and a class name shows each byte that is not UTF-8 as a ``\\xNN`` escape."""

from __future__ import annotations

import os
from pathlib import Path

from cli_fixtures import cli, read_jsonl, tiny_config, write_config, write_domain_tree

from avalanche_clip.scenarios import build_scenario

CAFE = os.fsdecode(b"caf\xe9")  # "café" in Latin-1: a valid Linux name, not UTF-8
BYTE_FF = os.fsdecode(b"\xff")


def _non_utf8_tree(root: Path) -> Path:
    """The DomainNet-layout tree of ``write_domain_tree`` (classes cat, dog, car) with class
    folders ``dog`` → ``\\xff`` and ``car`` → ``caf\\xe9``, and ``cat/0.png`` → ``caf\\xe9.png``,
    renamed in the split files too (as Latin-1 bytes)."""
    write_domain_tree(root, per_class=4)
    for domain in ("paint", "photo"):
        os.rename(root / domain / "cat" / "0.png", root / domain / "cat" / f"{CAFE}.png")
        os.rename(root / domain / "dog", root / domain / BYTE_FF)
        os.rename(root / domain / "car", root / domain / CAFE)
        for split in ("train", "test"):
            listed = root / f"{domain}_{split}.txt"
            listed.write_bytes(listed.read_bytes().replace(b"/cat/0.png", b"/cat/caf\xe9.png")
                               .replace(b"/dog/", b"/\xff/").replace(b"/car/", b"/caf\xe9/"))
    return root


def test_a_run_reads_non_utf8_file_and_class_names(tmp_path, capsys):
    root = _non_utf8_tree(tmp_path / "domains")
    config = write_config(tmp_path / "run.yaml", tiny_config(
        tmp_path / "cache", scenario="domain-folder", data_root=str(root), n_experiences=None,
        scenario_options={}))

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")

    assert code == 0, stderr
    records = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert [r["experience"] for r in records] == [0, 1] and records[-1]["final"]
    assert (tmp_path / "cache" / "file-digests.sqlite").is_file()  # the names were remembered too
    benchmark = build_scenario("domain-folder", root=root)
    assert benchmark.class_names == ["cat", "\\xff", "caf\\xe9"]  # labels 0, 1, 2 of the split files
    assert f"{root}/paint/cat/{CAFE}.png" in benchmark.source.train.dataset.paths


def test_an_image_folder_with_non_utf8_names_decodes_into_its_cache(tmp_path):
    root = _non_utf8_tree(tmp_path / "domains")
    os.rename(root / "paint", root / "train")  # the same classes in both: an ImageFolder root
    os.rename(root / "photo", root / "test")

    benchmark = build_scenario("split-imagefolder", root=root, n_experiences=3, decode_cache=True,
                               cache_dir=str(tmp_path / "decoded"))

    assert benchmark.class_names == ["caf\\xe9", "cat", "\\xff"]  # folders sorted as Python sorts them
    assert benchmark.source.extra["class_folders"] == [CAFE, "cat", BYTE_FF]  # the names on disk
    assert len(list((tmp_path / "decoded").glob("decoded-*.npy"))) == 2  # train and test arrays
    assert benchmark.num_train_samples == 3 * 4  # every image of every class folder
