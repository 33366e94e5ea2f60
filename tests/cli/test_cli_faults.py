"""Faults end in one clear line and exit code 2, never a traceback, and lose nothing finished:
damaged checkpoints, records missing under a checkpoint, diverged training, unreadable images,
read-only and full output folders."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest
from cli_fixtures import (
    cli,
    interrupted_run,
    main,
    read_jsonl,
    tiny_config,
    without_time,
    write_config,
    write_domain_tree,
)

import avalanche_clip.common.atomic as atomic
from avalanche_clip.reporting import TruncatedLineWarning


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(config file, records of the same run finished without interruption)."""
    root = tmp_path_factory.mktemp("reference")
    config = write_config(root / "run.yaml", tiny_config(root / "cache"))
    assert main(["run", "--config", str(config), "--out", str(root / "out")]) == 0
    return config, read_jsonl(root / "out" / "results.jsonl")


def _refused(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert stderr.startswith("avalanche-clip run: error: ") and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for fragment in fragments:
        assert fragment in stderr, f"{fragment!r} missing from: {stderr}"


def _no_temporary_files(out: Path) -> None:
    assert not [p.name for p in out.rglob("*.tmp")]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "foreign"])
def test_a_damaged_checkpoint_names_itself_and_deleting_it_restarts_the_run(reference, tmp_path, capsys, damage):
    import torch

    config, finished = reference
    out = interrupted_run(tmp_path / "run", config)
    checkpoint = out / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes({"garbage": b"not a checkpoint at all", "truncated": whole[: len(whole) // 2],
                            "empty": b"", "foreign": b""}[damage])
    if damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, checkpoint)
    records = (out / "results.jsonl").read_bytes()

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")

    _refused(code, stderr, f"checkpoint {checkpoint} is damaged (", "delete it to restart the run")
    if damage == "foreign":
        assert "it lacks version, experience, config, strategy, rng" in stderr
    assert (out / "results.jsonl").read_bytes() == records  # the finished experience is kept
    checkpoint.unlink()
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
    assert code == 0, stderr
    assert without_time(read_jsonl(out / "results.jsonl")) == without_time(finished)


@pytest.mark.parametrize("records", ["deleted", "emptied", "cut"])
def test_resume_refuses_a_checkpoint_whose_records_are_missing(reference, tmp_path, capsys, records):
    config, finished = reference
    out = interrupted_run(tmp_path / "run", config)
    results = out / "results.jsonl"
    if records == "deleted":
        results.unlink()
    elif records == "emptied":
        results.write_text("")
    else:  # the record of experience 0 cut mid-line: skipped with a warning
        results.write_bytes(results.read_bytes()[:40])

    cut = pytest.warns(TruncatedLineWarning, match=rf"{results}:1: skipped an undecodable last line")
    with cut if records == "cut" else contextlib.nullcontext():
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)
        _refused(code, stderr, "holds an unfinished run; pass --resume")
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")

        # Resuming would write experience 1's record with a wrong forgetting and no experience 0.
        _refused(code, stderr, f"cannot resume: checkpoint {out / 'checkpoint.pt'} was saved after "
                 "experience 0", "holds records for experiences none instead of 0..0",
                 "delete the checkpoint to restart")
        assert (out / "checkpoint.pt").is_file()
        (out / "checkpoint.pt").unlink()
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
        assert code == 0, stderr
    assert without_time(read_jsonl(results)) == without_time(finished)


@pytest.mark.parametrize("strategy, caught", [  # the loss path: tests/plugins/test_finite_guard.py
    ("gcl", "trainable weights clip.text_projection, clip.visual.proj are not finite"),
    ("naive", "trainable weights clip.text_projection, clip.visual.proj are not finite"),
])
def test_diverged_training_stops_with_a_clear_error_and_no_final_record(reference, tmp_path, capsys,
                                                                       strategy, caught):
    config, _ = reference
    out = tmp_path / "run"

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "lr=1e6",
                          f"strategy={strategy}", f"mem_size={10 if strategy == 'gcl' else 0}")

    _refused(code, stderr, "training diverged at experience 1", caught,
             "learning rate 1e+06; lower lr", "No record was written for this experience")
    records = read_jsonl(out / "results.jsonl")
    assert [r["experience"] for r in records] == [0] and not records[-1]["final"]


@pytest.mark.parametrize("damage, workers", [("zero bytes", 0), ("truncated", 0), ("truncated", 1)])
def test_an_unreadable_image_is_one_line_naming_the_file(tmp_path, capsys, damage, workers):
    root = write_domain_tree(tmp_path / "domains", per_class=3)
    image = root / "photo" / "dog" / "1.png"
    image.write_bytes(b"" if damage == "zero bytes" else image.read_bytes()[:60])
    config = write_config(tmp_path / "run.yaml", tiny_config(
        tmp_path / "cache", scenario="domain-folder", data_root=str(root), n_experiences=None,
        scenario_options={}, strategy="naive", mem_size=0, num_workers=workers))

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")

    _refused(code, stderr, f"image {str(image)!r}", "re-extract it")
    assert not (tmp_path / "out" / "results.jsonl").exists()


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` for the block (root only; skips the test where impossible)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        done = subprocess.CompletedProcess([], 1, "", "no mount command")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the monkeypatched full-disk test covers the write path")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "read-only"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with _tmpfs(folder, "ro,size=1m"):  # root ignores permission bits; a read-only mount does not
        yield folder


def test_a_read_only_output_folder_is_refused_before_training(reference, read_only_folder, capsys):
    config, _ = reference
    out = read_only_folder / "run"
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    _refused(code, stderr, f"cannot write {out}: {reason}", "choose a writable folder")


@pytest.mark.parametrize("where", ["read-only cache_dir", "$AVALANCHE_CLIP_CACHE below a file"])
def test_a_cache_folder_that_cannot_be_written_is_one_warning_and_the_run_goes_on(reference, tmp_path, capsys,
                                                                                 monkeypatch, request, where):
    from avalanche_clip.common.cache_writes import CacheWriteWarning

    config, finished = reference
    if where == "read-only cache_dir":
        cache = request.getfixturevalue("read_only_folder")
        reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
        setting = f"cache_dir={cache}"
    else:  # a path that can never be created: root ignores permission bits, not a file in the way
        (tmp_path / "notes.txt").write_text("not a folder")
        cache, reason = tmp_path / "notes.txt" / "cache", "Not a directory"
        monkeypatch.setenv("AVALANCHE_CLIP_CACHE", str(cache))
        setting = "cache_dir=null"
    with pytest.warns(CacheWriteWarning) as caught:
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", setting)

    assert code == 0, stderr  # the cache saves time only: the run's result does not depend on it
    assert [str(w.message).split(";")[0] for w in caught if w.category is CacheWriteWarning] == [
        f"cannot write the feature cache in {cache / 'features'} ({reason})"]
    assert without_time(read_jsonl(tmp_path / "out" / "results.jsonl")) == without_time(finished)


@pytest.fixture
def full_disk(tmp_path):
    with _tmpfs(tmp_path / "full", "size=256k") as folder:
        with open(folder / "filler", "wb", buffering=0) as stream, pytest.raises(OSError) as err:
            while True:  # fill it
                stream.write(b"\0" * 4096)
        assert err.value.errno == errno.ENOSPC
        yield folder


def test_a_full_disk_is_refused_before_training(reference, full_disk, capsys):
    config, _ = reference
    out = full_disk / "run"
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)
    _refused(code, stderr, f"cannot write {out}: No space left on device", "the disk is full")


def test_a_disk_that_fills_up_mid_run_keeps_what_finished_and_resumes(reference, tmp_path, capsys, monkeypatch):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file a write goes to")
    config, finished = reference
    out = tmp_path / "run"
    original_fsync = atomic.os.fsync
    writes = []

    def fsync(fd):  # the second write of results.jsonl (experience 1's records) hits a full disk
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".results.jsonl."):
            writes.append(fd)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)
    monkeypatch.undo()

    _refused(code, stderr, f"cannot write {out / 'results.jsonl'}: No space left on device",
             "--resume continues an interrupted run")
    assert [r["experience"] for r in read_jsonl(out / "results.jsonl")] == [0]  # kept as it was
    _no_temporary_files(out)
    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
    assert code == 0, stderr
    assert without_time(read_jsonl(out / "results.jsonl")) == without_time(finished)


def test_a_memory_larger_than_the_training_set_warns_naming_both(reference, tmp_path, capsys):
    from avalanche_clip.pipeline.run import MemorySizeWarning

    config, _ = reference
    with pytest.warns(MemorySizeWarning, match=r"mem_size=500 is larger than the training set \(120 samples\)"):
        code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out", "mem_size=500")
    assert code == 0, stderr
