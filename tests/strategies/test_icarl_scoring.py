"""iCaRL under the protocol: scored with the prompt head like every method, its nearest-mean
accuracy recorded beside it, and a memory digest of exactly ``mem_size`` herded exemplars that
are the ones Avalanche's own herding chooses."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.supervised.icarl import _ICaRLPlugin
from avalanche_fixtures import avalanche_benchmark, digits, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun, make_evaluator
from avalanche_clip.scenarios.assigned_ids import own_sample_ids
from avalanche_clip.strategies import StrategySetup, build_strategy
from avalanche_clip.strategies.herding import herding_ranks
from avalanche_clip.strategies.icarl import icarl_layout
from avalanche_clip.training.plugins.memory import balanced_capacities, ids_digest

MEM_SIZE = 16  # 2, 4, 6, 8, 10 classes seen: 8, 4, 3 (or 2), 2, 2 (or 1) exemplars per class


class AvalancheHerding(SupervisedPlugin):
    """After each experience, before iCaRL's own plugin (plugins run in order, ours first),
    Avalanche's unmodified ``_ICaRLPlugin.construct_exemplar_set`` herds the new classes on the
    same model: ``chosen[c]`` = (patterns, ranks) of its choice, ``⌈M/C⌉`` per class."""

    def __init__(self) -> None:
        super().__init__()
        self.chosen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def after_training_exp(self, strategy, **kwargs):
        reference = _ICaRLPlugin(MEM_SIZE, None, True)
        reference.observed_classes = list(strategy.exemplars.observed_classes)  # Avalanche's hook set it
        experience = strategy.experience
        plain = copy.copy(experience)
        plain._dataset = icarl_layout(experience.dataset)
        strategy.experience, was_training = plain, strategy.model.training
        strategy.model.eval()
        try:
            reference.construct_exemplar_set(strategy)
        finally:
            strategy.experience = experience
            strategy.model.train(was_training)
        for x, labels, order in zip(reference.x_memory, reference.y_memory, reference.order, strict=True):
            self.chosen[labels[0]] = (x.cpu(), order)


def _prompt_head_correct(classifier, data, seen):
    """Correct predictions and samples of ``argmax_{k seen} s·a·b_k`` on ``data``."""
    seen = torch.tensor(seen)
    correct = total = 0
    with torch.no_grad():
        scale, text = classifier.logit_scale(), classifier.class_embeddings(seen)
        for x, y, *_ in torch.utils.data.DataLoader(data.eval(), batch_size=64):
            image = F.normalize(classifier.clip.encode_image(x), dim=-1)
            predicted = seen[(scale * image @ text.T).argmax(dim=1)]
            correct += int((predicted == y).sum())
            total += len(y)
    return correct, total


def _nearest_mean_correct(strategy, data, seen):
    """Correct predictions and samples of ``argmin_{c seen} ‖a − μ_c‖``, the means computed here
    from the exemplars (features of the exemplars and of their mirror images)."""
    plugin, encoder = strategy.exemplars, strategy.model.feature_extractor
    means = {}
    with torch.no_grad():
        for x, labels in zip(plugin.x_memory, plugin.y_memory, strict=True):
            halves = [F.normalize(encoder(v), dim=-1).mean(dim=0) for v in (x, torch.flip(x, [3]))]
            means[labels[0]] = F.normalize((halves[0] + halves[1]) / 2, dim=0)
        centres = torch.stack([means[c] for c in seen])
        correct = total = 0
        for x, y, *_ in torch.utils.data.DataLoader(data.eval(), batch_size=64):
            distances = torch.cdist(F.normalize(encoder(x), dim=-1), centres)
            correct += int((torch.tensor(seen)[distances.argmin(dim=1)] == y).sum())
            total += len(y)
    return correct, total


@pytest.fixture(scope="module")
def icarl_run():
    benchmark = cil_benchmark(with_index=False)  # iCaRL's stream: ids an attribute, not an item
    herding = AvalancheHerding()
    setup = make_setup(benchmark, mem_size=MEM_SIZE, plugins=[herding])
    strategy = build_strategy("icarl", setup)
    classes = [sorted({int(y) for y in e.dataset.targets}) for e in benchmark.train_stream]
    references, memories = [], []

    def check_record(record):
        t = record["experience"]
        seen = [c for e in range(t + 1) for c in classes[e]]
        tests = [benchmark.test_stream[e].dataset for e in range(t + 1)]
        references.append({
            "head": [_prompt_head_correct(setup.classifier, data, seen) for data in tests],
            "ncm": [_nearest_mean_correct(strategy, data, seen) for data in tests],
        })
        plugin = strategy.exemplars
        memories.append({"ids": plugin.exemplar_ids().tolist(),
                         "counts": {labels[0]: len(labels) for labels in plugin.y_memory if labels},
                         "classes": list(plugin.observed_classes)})

    records = ContinualRun(strategy, benchmark, progress=False, on_record=check_record).run()
    return benchmark, strategy, herding, records, references, memories


def test_records_score_the_prompt_head_over_the_seen_classes(icarl_run):
    _, _, _, records, references, _ = icarl_run
    for record, reference in zip(records, references, strict=True):
        head = reference["head"]
        assert record["accuracy_per_experience"] == pytest.approx([c / n for c, n in head], abs=1e-12)
        assert record["stream_accuracy"] == pytest.approx(
            sum(c for c, _ in head) / sum(n for _, n in head), abs=1e-12)


def test_the_nearest_mean_accuracy_is_recorded_beside_it(icarl_run):
    _, _, _, records, references, _ = icarl_run
    for record, reference in zip(records, references, strict=True):
        ncm = reference["ncm"]
        assert record["ncm_accuracy_per_experience"] == pytest.approx([c / n for c, n in ncm], abs=1e-12)
        assert record["ncm_stream_accuracy"] == pytest.approx(
            sum(c for c, _ in ncm) / sum(n for _, n in ncm), abs=1e-12)
    # two classifiers, two scores: the fields are not copies of each other
    assert any(r["ncm_accuracy_per_experience"] != r["accuracy_per_experience"] for r in records)


def test_the_memory_digest_is_of_exactly_mem_size_herded_ids(icarl_run):
    _, _, _, records, _, memories = icarl_run
    for record, memory in zip(records, memories, strict=True):
        assert len(memory["ids"]) == len(set(memory["ids"])) == MEM_SIZE
        assert memory["counts"] == balanced_capacities(memory["classes"], MEM_SIZE)
        assert record["memory_digest"] == ids_digest(memory["ids"])
    assert len({r["memory_digest"] for r in records}) == len(records)  # it changes every experience


def test_the_ids_name_the_exemplars_samples(icarl_run):
    benchmark, strategy, _, _, _, _ = icarl_run
    where = {}  # global id -> (dataset, position)
    for experience in benchmark.train_stream:
        data = experience.dataset.eval()
        for position, sample_id in enumerate(own_sample_ids(experience.dataset)):
            where[int(sample_id)] = (data, position)
    plugin = strategy.exemplars
    for x, labels, ids in zip(plugin.x_memory, plugin.y_memory, plugin.id_memory, strict=True):
        for pattern, label, sample_id in zip(x, labels, ids.tolist(), strict=True):
            data, position = where[sample_id]
            stored, target, *_ = data[position]
            assert target == label and torch.equal(stored, pattern.cpu())


def test_the_exemplars_are_avalanches_herding_cut_to_the_capacities(icarl_run):
    _, strategy, herding, _, _, _ = icarl_run
    plugin = strategy.exemplars
    assert sorted(herding.chosen) == list(range(10))
    capacity = balanced_capacities(list(plugin.observed_classes), MEM_SIZE)
    for x, labels, order in zip(plugin.x_memory, plugin.y_memory, plugin.order, strict=True):
        theirs, their_order = herding.chosen[labels[0]]
        # the class's exemplars when it was new (Avalanche: ⌈M/C⌉ then trimmed by rank), cut to
        # its capacity now: the best ranks of Avalanche's choice, in the data's order
        best = torch.sort(torch.argsort(their_order)[:capacity[labels[0]]]).values
        assert len(x) == capacity[labels[0]] <= len(theirs)
        assert torch.equal(x.cpu(), theirs[best]) and torch.equal(order, their_order[best])
    # the last classes got ⌈16/10⌉ = 2 from Avalanche and keep 1 here: the cut is exercised
    assert [len(herding.chosen[c][0]) for c in plugin.observed_classes[-2:]] == [2, 2]
    assert [capacity[c] for c in plugin.observed_classes[-2:]] == [1, 1]


def _herding_by_the_recurrence(features: np.ndarray, count: int) -> list[int]:
    """The indices chosen, in order: the recurrence of ``herding``'s docstring in float64 numpy."""
    d = features / np.linalg.norm(features, axis=1, keepdims=True)
    mean = d.mean(axis=0)
    residual, chosen = mean.copy(), []
    for _ in range(1000):
        if len(chosen) == count:
            break
        best = int(np.argmax(d @ residual))
        if best not in chosen:
            chosen.append(best)
        residual = residual + mean - d[best]
    return chosen


def test_herding_ranks_follow_the_recurrence():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    ranks = herding_ranks(features * torch.rand(30, 1, generator=generator, dtype=torch.float64), 12)
    order = _herding_by_the_recurrence(features.numpy(), 12)
    assert len(order) == 12 and ranks[order].tolist() == list(range(1, 13))
    assert int((ranks > 0).sum()) == 12  # the others: 0
    # the first choice is the sample nearest the mean direction
    unit = F.normalize(features, dim=1)
    assert order[0] == int((unit @ unit.mean(dim=0)).argmax())
    assert herding_ranks(features, 0).tolist() == [0.0] * 30
    # fewer samples than asked: all of them, once the iteration cap ends the search
    assert sorted(herding_ranks(features[:3], 5).tolist()) == [1.0, 2.0, 3.0]


def test_herding_ranks_refuses_bad_input():
    with pytest.raises(ValueError, match=r"features must be \[n, F\], got shape \(4,\)"):
        herding_ranks(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        herding_ranks(torch.eye(3), -1)


def test_a_record_field_cannot_be_replaced_by_extra_fields():
    benchmark = cil_benchmark(with_index=True, per_class=4)
    strategy = build_strategy("zero-shot", make_setup(benchmark, mem_size=0))
    strategy.extra_record_fields = lambda: {"memory_digest": "mine", "own": 1}
    with pytest.raises(ValueError, match=r"extra_record_fields\(\) returned \['memory_digest'\], fields the record"):
        ContinualRun(strategy, benchmark, progress=False).run()


def test_ids_are_given_out_for_a_benchmark_without_them():
    # Avalanche's own builder: no sample_idx; experience t's samples get ids from the total size of
    # the experiences before it (avalanche_clip.scenarios.assigned_ids), as the shared memory's do
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    _, _, names = digits(8)
    setup = StrategySetup(classifier=tiny_classifier(names), benchmark=benchmark, train_mb_size=8,
                          eval_mb_size=32, mem_size=10, seed=0, evaluator=make_evaluator())
    strategy = build_strategy("icarl", setup)
    records = ContinualRun(strategy, benchmark, progress=False).run()
    offsets = [0]
    for experience in benchmark.train_stream:
        offsets.append(offsets[-1] + len(experience.dataset))
    plugin = strategy.exemplars
    assert len(set(plugin.exemplar_ids().tolist())) == 10
    assert records[-1]["memory_digest"] == ids_digest(plugin.exemplar_ids().tolist())
    for x, labels, ids in zip(plugin.x_memory, plugin.y_memory, plugin.id_memory, strict=True):
        for pattern, label, sample_id in zip(x, labels, ids.tolist(), strict=True):
            t = max(e for e in range(len(offsets) - 1) if offsets[e] <= sample_id)
            stored, target, *_ = benchmark.train_stream[t].dataset.eval()[sample_id - offsets[t]]
            assert target == label and torch.equal(stored, pattern.cpu())


def test_with_the_linear_head_the_records_score_the_linear_head():
    benchmark = cil_benchmark(with_index=False, per_class=8)
    setup = make_setup(benchmark, mem_size=10, head="linear")
    strategy = build_strategy("icarl", setup)
    expected = []

    def score(record):
        seen = torch.tensor(sorted({int(y) for e in benchmark.train_stream[:record["experience"] + 1]
                                    for y in e.dataset.targets}))
        correct = total = 0
        head = strategy.model.train_classifier  # the linear head: W·a + c
        with torch.no_grad():
            for e in range(record["experience"] + 1):
                for x, y, *_ in torch.utils.data.DataLoader(benchmark.test_stream[e].dataset.eval(), batch_size=64):
                    image = F.normalize(setup.classifier.clip.encode_image(x), dim=-1)
                    correct += int((seen[(image @ head.weight[seen].T + head.bias[seen]).argmax(1)] == y).sum())
                    total += len(y)
        expected.append(correct / total)

    records = ContinualRun(strategy, benchmark, progress=False, on_record=score).run()
    assert [r["stream_accuracy"] for r in records] == pytest.approx(expected, abs=1e-12)
    assert all("ncm_stream_accuracy" in r for r in records)
