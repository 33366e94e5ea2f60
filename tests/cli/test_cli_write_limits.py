"""A checkpoint that cannot be written — a file-size limit (``ulimit -f``) or a disk that fills up
during ``torch.save`` — ends in one line naming it and what to do, and the checkpoint written
before stays whole: resuming from it gives the same records as the interrupted run wrote."""

from __future__ import annotations

import contextlib
import resource
import shutil
import signal
from pathlib import Path

import pytest
from cli_fixtures import cli, interrupted_run, read_jsonl, tiny_config, without_time, write_config
from test_cli_faults import _refused, _tmpfs


@contextlib.contextmanager
def file_size_limit(n_bytes: int):
    """``ulimit -f``: this process cannot make a file longer than ``n_bytes`` for the block
    (SIGXFSZ ignored, as the Python interpreter ignores it, so a write past it fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("limit", ["file-size limit", "full disk"])
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_previous_one_stays(tmp_path, capsys, limit):
    config = write_config(tmp_path / "run.yaml", tiny_config(tmp_path / "cache", n_experiences=5))
    out = interrupted_run(tmp_path / "run", config)  # records [0] and the checkpoint of experience 0
    saved = (out / "checkpoint.pt").read_bytes()
    if limit == "full disk":  # room for the run folder and half a checkpoint more: torch.save fills it
        size = (_folder_bytes(out) + len(saved) // 2 + 4095) // 4096 * 4096
        with _tmpfs(tmp_path / "small-disk", f"size={size}") as disk:
            where = shutil.copytree(out, disk / "run")
            code, _, stderr = cli(capsys, "run", "--config", config, "--out", where, "--resume")
            shutil.rmtree(out)
            shutil.copytree(where, out)  # what the failed run left, kept off the small disk
        reason = "No space left on device; the disk is full"
    else:
        where = out
        with file_size_limit(len(saved) // 2):
            code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
        reason = "File too large; the file would exceed the file-size limit (ulimit -f)"

    _refused(code, stderr, f"cannot write {where / 'checkpoint.pt'}: {reason}", "--resume continues")
    assert (out / "checkpoint.pt").read_bytes() == saved
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    written = read_jsonl(out / "results.jsonl")
    assert [r["experience"] for r in written] == [0, 1]  # experience 1 finished before its checkpoint

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out, "--resume")
    assert code == 0, stderr  # from the checkpoint of experience 0: experience 1 again, the same
    resumed = read_jsonl(out / "results.jsonl")
    assert [r["experience"] for r in resumed] == [0, 1, 2, 3, 4]
    assert without_time(resumed[:2]) == without_time(written)


def test_a_feature_cache_that_fills_up_is_one_warning_and_the_features_are_used_from_memory(tmp_path):
    import torch

    from avalanche_clip.common.cache_writes import CacheWriteWarning
    from avalanche_clip.features import clear_memory, load_or_build

    features = {"train": torch.arange(40_000.0).reshape(100, 400), "test": torch.ones(10, 400)}
    clear_memory()
    with file_size_limit(50_000), pytest.warns(CacheWriteWarning, match=(
            rf"cannot write the feature cache in {tmp_path / 'features'} \(File too large\)")):
        got, built = load_or_build(tmp_path, "key", {"what": "test"}, features.__getitem__)
    clear_memory()

    assert built and all(torch.equal(got[split], features[split]) for split in features)
    entry = tmp_path / "features" / "key"
    assert not (entry / "meta.json").exists() and not list(entry.glob("*.tmp"))  # nothing that counts
    _, built = load_or_build(tmp_path, "key", {"what": "test"}, features.__getitem__)
    assert built  # built again (and kept now), never read from a half-written entry
    assert (entry / "meta.json").is_file()
    clear_memory()
