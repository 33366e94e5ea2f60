"""Weights and data checked before training, and ``prepare`` (issue 18), with the network absent.

"No network call" is asserted, not assumed: the ``no_network`` fixture makes every DNS lookup and
socket connection of this process raise, and counts the attempts.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import pytest
import torch
from cli_fixtures import cli, read_jsonl, tiny_config, tiny_sweep_config, write_config

from avalanche_clip.assets.weights import weight_asset
from avalanche_clip.models import create_clip, list_models
from avalanche_clip.models.hub import locate_pretrained
from avalanche_clip.models.offline import CONFIG_DIR

PAPER = sorted((Path(__file__).resolve().parents[2] / "experiments" / "paper").glob("*.yaml"))
TAG_MEAN = (0.1, 0.2, 0.3)


@pytest.fixture
def no_network(monkeypatch):
    """Every DNS lookup or connection raises; returns the list of attempted hosts."""
    attempts: list[object] = []

    def refuse(kind):
        def call(*args, **kwargs):
            attempts.append((kind, args[1] if kind == "connect" else args[0]))
            raise OSError(f"network disabled in this test ({kind})")
        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    return attempts


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face Hub cache that runs and prepare look in."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def tagged_model(hub_cache, monkeypatch):
    """An open_clip architecture ``tiny-tagged`` (tiny-clip's config) with a pretrained tag
    ``testtag`` (a Hub repo, its own image mean), and the tag's weights in the Hub cache laid out
    as huggingface_hub writes it (refs/main → snapshot → blob named by its SHA-256)."""
    import open_clip.factory
    import open_clip.pretrained

    list_models()  # register the offline configs first: a later rescan would drop ours
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-tagged",
                        json.loads((CONFIG_DIR / "tiny-clip.json").read_text()))
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-tagged", {"testtag": {
        "url": "", "hf_hub": "test-org/tiny-tagged/", "mean": TAG_MEAN, "std": (0.5, 0.5, 0.5),
        "interpolation": "bicubic", "resize_mode": "shortest"}})
    source, _, _, _ = create_clip("tiny-tagged")
    with torch.no_grad():
        source.logit_scale.fill_(2.5)
    repo = hub_cache / "models--test-org--tiny-tagged"
    (repo / "blobs").mkdir(parents=True)
    staging = repo / "blobs" / "staging"
    torch.save(source.state_dict(), staging)
    blob = staging.rename(repo / "blobs" / hashlib.sha256(staging.read_bytes()).hexdigest())
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return source


def test_a_cached_open_clip_tag_loads_with_no_network_call(tagged_model, no_network):
    model, _, eval_tf, _ = create_clip("tiny-tagged", "testtag")
    for (name, a), (_, b) in zip(tagged_model.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert tuple(eval_tf.transforms[-1].mean) == TAG_MEAN  # the tag's preprocessing, as open_clip's
    assert model.clip_spec.pretrained == "testtag"
    assert no_network == []


def test_an_uncached_tag_is_not_found_without_network(hub_cache, no_network):
    assert locate_pretrained("ViT-B-16", "laion2b_s34b_b88k") is None
    missing = weight_asset("ViT-B-16", "default")  # the model's own tag, laion400m_e31
    assert not missing.present and "'laion400m_e31'" in missing.name and str(hub_cache) in missing.location
    assert weight_asset("effnet-lite0-clip", "default").present  # shipped in a pip package
    assert weight_asset("tiny-clip", "default") is None  # random init reads nothing
    assert no_network == []


@pytest.mark.parametrize("paper", PAPER, ids=lambda p: p.stem)
def test_paper_configs_fail_within_seconds_naming_what_is_missing(paper, tmp_path, hub_cache, no_network, capsys):
    out, data = tmp_path / "out", tmp_path / "data"
    began = time.monotonic()
    code, _, stderr = cli(capsys, "sweep", "--config", paper, "--out", out, f"data_root={data}")
    elapsed = time.monotonic() - began

    assert code == 2, stderr
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert no_network == []  # nothing was tried, so nothing was retried
    for fragment in ("ViT-B-16 'laion2b_s34b_b88k'", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", str(hub_cache),
                     f"data_root '{data}' does not exist", "nothing was run",
                     f"avalanche-clip prepare --config {paper} data_root={data}"):
        assert fragment in stderr, fragment
    assert stderr.count("avalanche-clip sweep: error:") == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_prepare_without_network_lists_what_is_missing_and_fails(tmp_path, hub_cache, no_network, capsys):
    paper = next(p for p in PAPER if "imagenet" in p.stem)
    code, stdout, _ = cli(capsys, "prepare", "--config", paper, f"data_root={tmp_path / 'imagenet'}")
    assert code == 1
    assert "MISSING  weights ViT-B-16 'laion2b_s34b_b88k'" in stdout
    assert "huggingface.co is not reachable" in stdout
    # ImageNet has no download: where the files go and how they are checked
    assert "MISSING  data of scenario 'split-imagenet'" in stdout
    for fragment in ("<root>/train/<class>/<image>.jpg", "<root>/val/<class>/<image>.jpg",
                     "how to get it: download ILSVRC2012", "checked: when a run builds it"):
        assert fragment in stdout, fragment
    assert [host for _, host in no_network] == ["huggingface.co"]  # one probe, no download tries


def test_prepare_reports_present_assets_and_checks_their_hashes(tagged_model, hub_cache, tmp_path, data_root,
                                                                no_network, capsys):
    config = write_config(tmp_path / "run.yaml", tiny_config(
        tmp_path / "cache", model="tiny-tagged", pretrained="testtag", scenario="split-imagefolder",
        data_root=str(data_root / "cifar10")))
    code, stdout, _ = cli(capsys, "prepare", "--config", config)
    assert code == 0, stdout
    assert "present  weights tiny-tagged 'testtag'" in stdout and "SHA-256 matches" in stdout
    assert f"present  data of scenario 'split-imagefolder': {data_root / 'cifar10'}" in stdout
    assert "everything is present" in stdout
    assert no_network == []  # nothing to fetch: no probe either

    blob = next(hub_cache.rglob("blobs/*"))
    damaged = bytearray(blob.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one byte flipped: a damaged download
    blob.write_bytes(bytes(damaged))
    code, stdout, _ = cli(capsys, "prepare", "--check", "--config", config)
    assert code == 1 and "DAMAGED  weights tiny-tagged 'testtag'" in stdout, stdout


def test_a_symlinked_data_root_is_reported_as_given_and_runs(tmp_path, data_root, no_network, capsys):
    mounted = tmp_path / "mounted"  # e.g. ../shared mounted as a link to the real folder
    mounted.symlink_to(data_root.resolve(), target_is_directory=True)
    config = write_config(tmp_path / "run.yaml", tiny_config(
        tmp_path / "cache", scenario="split-imagefolder", data_root=str(mounted / "cifar10"),
        strategy="naive", mem_size=0, scenario_options={"max_train_per_class": 2, "max_test_per_class": 1}))

    code, stdout, _ = cli(capsys, "prepare", "--config", config)
    assert code == 0, stdout
    assert f"present  data of scenario 'split-imagefolder': {mounted / 'cifar10'}\n" in stdout

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", tmp_path / "out")
    assert code == 0, stderr
    assert read_jsonl(tmp_path / "out" / "results.jsonl")[-1]["final"]
    assert no_network == []


def test_local_weights_and_shared_cifar10_run_with_no_network_call(tmp_path, data_root, no_network, capsys):
    weights = tmp_path / "tiny.pt"
    source, _, _, _ = create_clip("tiny-clip")
    torch.save(source.state_dict(), weights)
    config = write_config(tmp_path / "run.yaml", tiny_config(
        tmp_path / "cache", pretrained=str(weights), scenario="split-imagefolder",
        data_root=str(data_root / "cifar10"), strategy="naive", mem_size=0,
        scenario_options={"max_train_per_class": 4, "max_test_per_class": 2}))
    out = tmp_path / "out"

    code, _, stderr = cli(capsys, "run", "--config", config, "--out", out)

    assert code == 0, stderr
    records = read_jsonl(out / "results.jsonl")
    assert records[-1]["final"] and {r["pretrained"] for r in records} == {str(weights)}
    assert no_network == []


def test_a_sweep_whose_first_runs_fail_alike_stops_and_says_why(tmp_path, capsys):
    root = tmp_path / "empty"
    for split in ("train", "test"):  # present as far as files go; every run fails to build it
        (root / split).mkdir(parents=True)
    config = write_config(tmp_path / "sweep.yaml", tiny_sweep_config(
        tmp_path / "cache", scenario="split-imagefolder", data_root=str(root), n_experiences=None,
        scenario_options={}))
    out = tmp_path / "out"

    code, _, stderr = cli(capsys, "sweep", "--config", config, "--out", out)

    assert code == 1, stderr
    lines = read_jsonl(out / "failures.jsonl")
    assert [line["run_id"] for line in lines] == ["split-imagefolder__zero-shot__m0__s0",
                                                  "split-imagefolder__naive__m0__s0", None]
    assert lines[0]["error"] == lines[1]["error"] and "has no class folders" in lines[0]["error"]
    assert lines[2]["stopped"] and "first 2 runs failed with the same error" in lines[2]["error"]
    # 12 planned, 2 attempted: neither got as far as a run folder (its data fails to read)
    assert not (out / "runs").exists() or len(list((out / "runs").iterdir())) <= 2
    assert stderr.count("FAILED split-imagefolder__") == 2
    assert "sweep stopped: its first 2 runs failed with the same error" in stderr
    assert "has no class folders" in stderr.split("sweep stopped:")[1]
