"""Checkpoints: a resumed run reproduces the uninterrupted one; another config is refused."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun, read_records
from avalanche_clip.strategies import build_strategy
from avalanche_clip.training.checkpoint import CheckpointMismatchError, load_checkpoint
from avalanche_clip.training.packed_tensors import unpack_tensors

pytestmark = pytest.mark.filterwarnings("ignore:plugin CrashBeforeExperience has no state_dict")
COMPARED = ("experience", "stream_accuracy", "accuracy_per_experience", "forgetting", "final")


class Crash(Exception):
    pass


class CrashBeforeExperience(SupervisedPlugin):  # no state_dict: a user plugin, assumed stateless
    """Simulates the process dying when training reaches a given experience."""

    def __init__(self, experience: int):
        super().__init__()
        self.experience = experience

    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.experience:
            raise Crash


def _run(tmp_path, name, *, plugins=(), resume=False, config=None, mem_size=20):
    benchmark = cil_benchmark()
    strategy = build_strategy(name, make_setup(benchmark, mem_size=mem_size, plugins=list(plugins)))
    run = ContinualRun(strategy, benchmark, identity={"strategy": name},
                       records_path=tmp_path / "results.jsonl",
                       checkpoint_path=tmp_path / "checkpoint.pt",
                       config=config or {"strategy": name, "mem_size": mem_size}, progress=False)
    return run.run(resume=resume), strategy


@pytest.mark.parametrize("name", ["gdro", "replay", "der", "ewc", "co2l", "foster", "cassle", "zscl"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, name):
    reference, ref_strategy = _run(tmp_path / "reference", name)

    with pytest.raises(Crash):
        _run(tmp_path / "resumed", name, plugins=[CrashBeforeExperience(3)])
    partial = read_records(tmp_path / "resumed" / "results.jsonl")
    assert [r["experience"] for r in partial] == [0, 1, 2]

    resumed, strategy = _run(tmp_path / "resumed", name, resume=True)
    assert [{k: r[k] for k in COMPARED} for r in resumed] == [
        {k: r[k] for k in COMPARED} for r in reference
    ]
    for (key, a), (_, b) in zip(ref_strategy.model.state_dict().items(),
                                strategy.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    if name == "der":
        assert torch.equal(ref_strategy.stored_ids, strategy.stored_ids)
        torch.testing.assert_close(strategy.stored_logits, ref_strategy.stored_logits, rtol=0, atol=0)
    if name in ("co2l", "foster", "cassle"):  # the method's own modules (projector, predictor)
        for key, value in ref_strategy.method_modules.state_dict().items():
            torch.testing.assert_close(strategy.method_modules.state_dict()[key], value, rtol=0, atol=0, msg=key)
    if name == "zscl":  # the reference pool rebuilt, the reference batches' generator restored
        assert torch.equal(strategy.held_out, ref_strategy.held_out)
        assert torch.equal(strategy.reference_generator.get_state(), ref_strategy.reference_generator.get_state())
    if name == "gdro":
        for key, value in ref_strategy.contrastive_loss.state_dict().items():
            torch.testing.assert_close(strategy.contrastive_loss.state_dict()[key], value, rtol=0, atol=0,
                                       equal_nan=True, msg=key)


def test_a_finished_run_is_never_retrained(tmp_path):
    first, _ = _run(tmp_path, "gcl")
    again, strategy = _run(tmp_path, "gcl", resume=True, plugins=[CrashBeforeExperience(0)])
    assert again == first  # the crash plugin never fired: nothing was trained


def test_checkpoint_from_another_config_is_refused(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, "gcl", plugins=[CrashBeforeExperience(2)], config={"strategy": "gcl", "tau": 0.05})
    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark))
    with pytest.raises(CheckpointMismatchError, match=r"tau: checkpoint 0.05 vs now 0.1"):
        load_checkpoint(tmp_path / "checkpoint.pt", strategy=strategy,
                        train_stream=benchmark.train_stream, config={"strategy": "gcl", "tau": 0.1})
    # the device may change between the two runs
    load_checkpoint(tmp_path / "checkpoint.pt", strategy=strategy, train_stream=benchmark.train_stream,
                    config={"strategy": "gcl", "tau": 0.05, "device": "cuda"})


def test_checkpoint_loads_with_weights_only(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, "gcl", plugins=[CrashBeforeExperience(1)])
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["experience"] == 0
    memory = payload["strategy"]["plugins"]["ClassBalancedReplayPlugin"]
    assert sum(len(ids) for ids in memory["members"]) == 20
    assert set(payload["strategy"]["loss"]) == {"log_u", "log_v"}


def test_checkpoint_keeps_frozen_weights_as_a_fingerprint_and_checks_it(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, "gcl", plugins=[CrashBeforeExperience(1)])
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    saved = unpack_tensors(payload["strategy"]["model"])
    assert "clip.visual.conv1.weight" not in saved  # frozen under trainable="last:1"
    assert "clip.visual.proj" in saved and "classes.seen" in saved

    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark))
    with torch.no_grad():
        strategy.model.clip.visual.conv1.weight.add_(1e-3)  # other "pretrained" weights
    with pytest.raises(CheckpointMismatchError, match="frozen weights of this model differ"):
        load_checkpoint(tmp_path / "checkpoint.pt", strategy=strategy,
                        train_stream=benchmark.train_stream, config={"strategy": "gcl", "mem_size": 20})


@pytest.mark.parametrize("final_checkpoint", [True, False])
def test_the_final_checkpoint_is_written_only_when_asked(tmp_path, monkeypatch, final_checkpoint):
    import avalanche_clip.pipeline.run_loop as run_loop

    written = []
    real = run_loop.checkpoint_payload
    monkeypatch.setattr(run_loop, "checkpoint_payload",
                        lambda **kw: written.append(kw["experience"]) or real(**kw))
    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark))
    run = ContinualRun(strategy, benchmark, records_path=tmp_path / "results.jsonl",
                       checkpoint_path=tmp_path / "checkpoint.pt", progress=False,
                       final_checkpoint=final_checkpoint)
    records = run.run()
    last = len(benchmark.train_stream) - 1
    assert written == list(range(last + 1 if final_checkpoint else last))
    assert load_checkpoint(tmp_path / "checkpoint.pt", strategy=build_strategy("gcl", make_setup(benchmark)),
                           train_stream=benchmark.train_stream) == written[-1]
    # a finished run is returned as it is on resume, whichever checkpoint it left
    assert ContinualRun(build_strategy("gcl", make_setup(benchmark)), benchmark,
                        records_path=tmp_path / "results.jsonl", checkpoint_path=tmp_path / "checkpoint.pt",
                        progress=False).run(resume=True) == records


def _checkpoint_after_experience_one(tmp_path):
    with pytest.raises(Crash):
        _run(tmp_path, "gcl", plugins=[CrashBeforeExperience(2)])
    return torch.load(tmp_path / "checkpoint.pt", weights_only=True)


def test_a_version_1_checkpoint_with_the_state_dict_as_it_is_still_resumes(tmp_path):
    payload = _checkpoint_after_experience_one(tmp_path / "packed")
    assert payload["version"] == 2
    old = {**payload, "version": 1,
           "strategy": {**payload["strategy"], "model": dict(unpack_tensors(payload["strategy"]["model"]))}}
    for folder, saved in (("v2", payload), ("v1", old)):
        (tmp_path / folder).mkdir()
        torch.save(saved, tmp_path / folder / "checkpoint.pt")
    benchmark = cil_benchmark()
    states = []
    for folder in ("v2", "v1"):
        strategy = build_strategy("gcl", make_setup(benchmark))
        assert load_checkpoint(tmp_path / folder / "checkpoint.pt", strategy=strategy,
                               train_stream=benchmark.train_stream, config=payload["config"]) == 1
        states.append(strategy.model.state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


def test_a_packed_entry_that_does_not_fit_is_a_damaged_checkpoint(tmp_path):
    from avalanche_clip.training.checkpoint import CheckpointDamagedError

    payload = _checkpoint_after_experience_one(tmp_path)
    payload["strategy"]["model"]["offsets"][-1] += 10**6
    torch.save(payload, tmp_path / "bad.pt")
    benchmark = cil_benchmark()
    with pytest.raises(CheckpointDamagedError, match="lies outside its flat tensor"):
        load_checkpoint(tmp_path / "bad.pt", strategy=build_strategy("gcl", make_setup(benchmark)),
                        train_stream=benchmark.train_stream, config=payload["config"])
