"""Every registered strategy runs on minilm-effnet-conse (``trainable="projections"``) on a tiny
class-incremental digits stream: it trains what it should and leaves MiniLM untouched."""

from __future__ import annotations

import copy

import pytest
import torch

from avalanche_clip.models import CLIPClassifier, set_trainable
from avalanche_clip.pipeline.run_loop import ContinualRun, make_evaluator
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.strategies import STRATEGIES, StrategySetup, build_strategy, strategy_info


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_strategy_runs_on_conse(conse, name):
    model, _, eval_tf, tokenizer = conse
    model = copy.deepcopy(model)
    set_trainable(model, "projections")
    info = strategy_info(name)
    benchmark = build_scenario("digits", n_experiences=2, seed=0, with_index=info.uses_index,
                               train_transform=eval_tf, eval_transform=eval_tf,
                               max_train_per_class=4, max_test_per_class=2)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names, "digit")
    setup = StrategySetup(classifier=classifier, benchmark=benchmark, mem_size=10, train_mb_size=10,
                          eval_mb_size=32, lr=1e-3, evaluator=make_evaluator(()))
    text_before = copy.deepcopy(model.text.transformer.state_dict())
    head_before = model.visual.head.embed.weight.detach().clone()

    records = ContinualRun(build_strategy(name, setup), benchmark, identity={"strategy": name},
                           progress=False, joint=info.joint).run()

    final = records[-1]
    assert final["final"] and len(final["accuracy_per_experience"]) == 2
    assert 0.0 <= final["stream_accuracy"] <= 1.0
    for key, tensor in model.text.transformer.state_dict().items():
        assert torch.equal(tensor, text_before[key]), key
    trained = not torch.equal(model.visual.head.embed.weight, head_before)
    assert trained == (name != "zero-shot")
