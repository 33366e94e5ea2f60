"""Our DER is Avalanche's Dark Experience Replay: the same loss value on the same batch as
``avalanche.training.DER``'s own training loop, and logits stored as Avalanche stores them."""

from __future__ import annotations

import copy

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import DER
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.strategies import build_strategy


class LossProbe(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.losses = []

    def before_backward(self, strategy, **kwargs):
        self.losses.append(float(strategy.loss))


def test_der_loss_equals_avalanches_on_the_same_batch():
    benchmark = cil_benchmark()
    setup = make_setup(benchmark, mem_size=20, head="linear", train_logits="seen")  # Avalanche's CE: all K
    ours = build_strategy("der", setup, alpha=0.3, beta=0.7)
    ours.model.mark_seen(range(10))  # a full head: Avalanche's DER distils all K logits
    theirs_model = copy.deepcopy(ours.model)
    probe = LossProbe()
    theirs = DER(model=theirs_model, optimizer=torch.optim.SGD(theirs_model.parameters(), lr=0.0),
                 mem_size=20, alpha=0.3, beta=0.7, train_mb_size=6, device="cpu",
                 plugins=[probe], evaluator=None)

    torch.manual_seed(0)
    x_new, y_new = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 0, 1, 0, 1])
    x_mem, y_mem = torch.rand(4, 3, 32, 32), torch.tensor([2, 3, 2, 3])
    stored = torch.randn(4, 10) * 3
    zeros = torch.zeros
    theirs.batch_size_mem = 4
    theirs.replay_loader = iter([[x_mem, y_mem, zeros(4, dtype=torch.long), stored]])
    theirs.dataloader = [[x_new, y_new, zeros(6, dtype=torch.long)]]
    theirs.model.train()
    theirs.training_epoch()

    mem_ids, new_ids = torch.tensor([100, 101, 102, 103]), torch.arange(6)
    ours.stored_ids, ours.stored_logits = mem_ids, stored
    ours.model.train()
    ours.mbatch = [torch.cat([x_mem, x_new]), torch.cat([y_mem, y_new]), zeros(10, dtype=torch.long)]
    ours.mb_index = torch.cat([mem_ids, new_ids])
    ours.mb_output = ours.model(ours.mb_x)
    assert abs(float(ours.training_loss()) - probe.losses[0]) < 1e-5


def test_der_stores_eval_mode_logits_of_the_samples_that_enter_memory():
    benchmark = cil_benchmark()
    strategy = build_strategy("der", make_setup(benchmark, mem_size=8))
    strategy.train(benchmark.train_stream[0], eval_streams=[])
    after_first = dict(zip(strategy.stored_ids.tolist(), strategy.stored_logits, strict=True))
    assert strategy.stored_ids.tolist() == strategy.replay.buffer_ids().tolist()
    model = strategy.model.eval()
    stored = strategy.replay.memory.dataset().eval()
    with torch.no_grad():
        expected = model(torch.stack([stored[i][0] for i in range(len(stored))]))
    torch.testing.assert_close(strategy.stored_logits, expected)
    assert torch.isinf(strategy.stored_logits[:, [c for c in range(10) if c not in (0, 1) and
                                                  c not in benchmark.classes_per_experience[0]]]).all()
    strategy.train(benchmark.train_stream[1], eval_streams=[])
    for sample_id, logits in zip(strategy.stored_ids.tolist(), strategy.stored_logits, strict=True):
        if sample_id in after_first:  # kept samples keep the logits of when they came in
            assert torch.equal(logits, after_first[sample_id])
