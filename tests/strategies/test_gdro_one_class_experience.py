"""GDRO on experiences of one class (no memory) learns: each batch's images are contrasted with
the prompts of the other classes seen so far, as a user's class-by-class stream needs."""

from __future__ import annotations

from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.strategies import GDROStrategy

ACCURACY = "Top1_Acc_Exp/eval_phase/test_stream/Exp001"


def test_gdro_learns_an_experience_of_one_class():
    benchmark = avalanche_benchmark("class_incremental_benchmark", n_experiences=10, per_class=16)
    model = tiny_classifier(digits(16)[2], trainable="all")
    strategy = GDROStrategy(model=model, optimizer=optimizer(model, lr=3e-3), mem_size=0,
                            train_mb_size=8, train_epochs=2, seed=0,
                            evaluator=EvaluationPlugin(accuracy_metrics(experience=True)))
    strategy.train(benchmark.train_stream[0])  # class 0 alone: nothing to contrast yet
    model.mark_seen([1])  # predict among classes 0 and 1, as after training the next experience
    before = strategy.eval(benchmark.test_stream[1:2])[ACCURACY]
    losses = []
    probe = strategy.contrastive_loss.register_forward_hook(lambda m, a, out: losses.append(float(out.detach())))
    strategy.train(benchmark.train_stream[1])  # class 1 alone
    probe.remove()
    after = strategy.eval(benchmark.test_stream[1:2])[ACCURACY]
    assert losses[0] > 0  # before: 0.0 on every step (no other-class sample in a batch)
    assert after > before and after >= 0.75, (before, after)
