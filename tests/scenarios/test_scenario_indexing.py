"""The global sample index: layout, uniqueness/stability, replay, and the task-label trap.

Each property is checked on generated data (digits, a fake DomainNet tree) and on small subsets of
the real data (CIFAR-10 JPEGs, PACS), the latter skipped when the data root is absent.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import DataAttribute, TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.benchmarks.utils.transform_groups import TransformGroups
from avalanche.evaluation.metrics import accuracy_metrics, class_accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin, SupervisedPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche.training.supervised import Naive
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

from avalanche_clip.scenarios import (
    SAMPLE_INDEX_ATTR,
    SAMPLE_INDEX_POSITION,
    build_scenario,
    has_sample_index,
    sample_index,
    unaugmented_dataset,
)

CASES = {
    "digits": lambda req: dict(name="digits", max_train_per_class=12, max_test_per_class=4),
    "fake-domainnet": lambda req: dict(
        name="domainnet", root=req.getfixturevalue("fake_domainnet")
    ),
    "cifar10": lambda req: dict(
        name="split-imagefolder",
        root=req.getfixturevalue("cifar10_root"),
        max_train_per_class=6,
        max_test_per_class=3,
    ),
    "pacs": lambda req: dict(
        name="domain-folder",
        root=req.getfixturevalue("pacs_root"),
        max_train_per_class=3,
        max_test_per_class=2,
    ),
}
REAL = {"cifar10", "pacs"}
PARAMS = [pytest.param(k, marks=[pytest.mark.data] if k in REAL else []) for k in CASES]


@pytest.fixture(params=PARAMS)
def kwargs(request) -> dict:
    return CASES[request.param](request)


def items(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def ids_of(dataset) -> list[int]:
    return list(getattr(dataset, SAMPLE_INDEX_ATTR))


def test_constants():
    assert SAMPLE_INDEX_POSITION == 2 and SAMPLE_INDEX_ATTR == "sample_idx"


def test_item_layout_task_label_last(kwargs):
    bm = build_scenario(**kwargs)
    plain = build_scenario(**kwargs, with_index=False)
    for stream in ("train_stream", "test_stream"):
        exp = getattr(bm, stream)[0]
        assert has_sample_index(exp.dataset)
        x, y, idx, t = exp.dataset[0]
        assert (
            isinstance(x, torch.Tensor) and isinstance(y, int) and isinstance(idx, int) and t == 0
        )
        assert len(getattr(plain, stream)[0].dataset[0]) == 3
        assert not has_sample_index(getattr(plain, stream)[0].dataset)
    # a collated mini-batch through the dataset's own collate: (x, y, idx, t), t last
    ds = bm.train_stream[0].dataset
    batch = next(iter(DataLoader(ds, batch_size=len(ds), collate_fn=ds.collate_fn)))
    assert len(batch) == 4
    assert torch.equal(sample_index(batch), torch.tensor(ids_of(ds)))
    assert torch.equal(batch[-1], torch.zeros(len(ds), dtype=torch.long))
    with pytest.raises(ValueError, match="with_index=True"):
        sample_index(batch[:1] + batch[1:2] + batch[3:])


def test_with_and_without_index_match_sample_for_sample(kwargs):
    a = build_scenario(**kwargs, with_index=True)
    b = build_scenario(**kwargs, with_index=False)
    assert a.class_order == b.class_order
    for name in ("train_stream", "test_stream"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert len(sa) == len(sb)
        for ea, eb in zip(sa, sb, strict=True):
            assert ea.classes_in_this_experience == eb.classes_in_this_experience
            assert getattr(ea, "domain", None) == getattr(eb, "domain", None)
            assert len(ea.dataset) == len(eb.dataset)
            for (xa, ya, _, ta), (xb, yb, tb) in zip(
                items(ea.dataset), items(eb.dataset), strict=True
            ):
                assert torch.equal(xa, xb) and ya == yb and ta == tb


def test_global_ids_unique_complete_and_stable(kwargs):
    bm = build_scenario(**kwargs)
    again = build_scenario(**kwargs)
    full = unaugmented_dataset(bm, "train")
    targets = bm.source.train.targets
    seen: set[int] = set()
    for exp, exp2 in zip(bm.train_stream, again.train_stream, strict=True):
        ids = ids_of(exp.dataset)
        assert len(set(ids)) == len(ids)
        assert seen.isdisjoint(ids), "an index appears in two experiences"
        seen.update(ids)
        assert ids == ids_of(exp2.dataset), "ids differ between two identical builds"
        for x, y, idx, _ in items(exp.dataset):
            assert y == targets[idx] and y in exp.classes_in_this_experience
            assert torch.equal(x, full[idx][0]), "the item is not sample idx of the full train set"
    assert seen == set(range(bm.num_train_samples))
    test_ids = [i for exp in bm.test_stream for i in ids_of(exp.dataset)]
    assert sorted(test_ids) == list(range(bm.num_test_samples))


def test_replayed_samples_keep_their_ids(kwargs):
    bm = build_scenario(**kwargs)
    full = unaugmented_dataset(bm, "train")
    buffer = ClassBalancedBuffer(max_size=8, adaptive_size=True)
    exp_ids = []
    for exp in bm.train_stream[:2]:
        buffer.update_from_dataset(exp.dataset)
        exp_ids.append(set(ids_of(exp.dataset)))
    mem = buffer.buffer
    assert 0 < len(mem) <= 8
    mem_ids = ids_of(mem)
    assert len(set(mem_ids)) == len(mem_ids)
    assert set(mem_ids) & exp_ids[0] and set(mem_ids) & exp_ids[1], (
        "memory should hold both experiences"
    )
    for x, y, idx, t in items(mem):
        assert t == 0 and y == bm.source.train.targets[idx]
        assert torch.equal(x, full[idx][0])


class _Capture(SupervisedPlugin):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def after_training_iteration(self, strategy, **kwargs):
        mb = strategy.mbatch
        self.batches.append(
            (
                len(mb),
                strategy.mb_task_id.clone(),
                mb[SAMPLE_INDEX_POSITION].clone(),
                strategy.mb_y.clone(),
            )
        )


def _tiny_model(num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, num_classes))


def _evaluator() -> EvaluationPlugin:
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        class_accuracy_metrics(stream=True),
        loggers=[],
    )


def test_metrics_group_by_task_label_not_sample_index(kwargs):
    """Naive + replay for 1 epoch on 2 experiences: the strategy sees task label 0 in mb_task_id
    (also in replayed batches), and the task-aware metrics report only task 0."""
    bm = build_scenario(**kwargs)
    model = _tiny_model(bm.num_classes)
    cap = _Capture()
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=8,
        train_epochs=1,
        eval_mb_size=32,
        evaluator=_evaluator(),
        plugins=[cap, ReplayPlugin(mem_size=6, storage_policy=ClassBalancedBuffer(max_size=6))],
    )
    first_ids = set(ids_of(bm.train_stream[0].dataset))
    for t, exp in enumerate(bm.train_stream[:2]):
        n_before = len(cap.batches)
        strategy.train(exp, num_workers=0)
        batches = cap.batches[n_before:]
        allowed = set().union(*(ids_of(e.dataset) for e in bm.train_stream[: t + 1]))
        for n_fields, task, idx, y in batches:
            assert n_fields == 4
            assert torch.equal(task, torch.zeros_like(task)), "mb_task_id must be the task label"
            assert set(idx.tolist()) <= allowed
            assert y.tolist() == [bm.source.train.targets[i] for i in idx.tolist()]
        if t == 1:  # replayed samples of experience 0 arrive with their own ids
            replayed = {i for _, _, idx, _ in batches for i in idx.tolist()} & first_ids
            assert replayed
    results = strategy.eval(bm.test_stream[:2])
    assert "Top1_Acc_Stream/eval_phase/test_stream" in results
    assert "Top1_Acc_Exp/eval_phase/test_stream/Exp001" in results
    class_keys = [k for k in results if k.startswith("Top1_ClassAcc_Stream")]
    assert class_keys and all("/Task000/" in k for k in class_keys)
    assert not any("Task" in k for k in results if k.startswith("Top1_Acc"))


def test_trap_ordering_would_group_by_sample_index():
    """Negative control: with the index *after* the task label (Avalanche's default append order),
    the same metrics split by sample index. Shows the previous test can fail."""
    bm = build_scenario("digits", max_train_per_class=2, max_test_per_class=2, n_experiences=1)
    src = bm.source.test
    n = len(src)
    trap = TaskAwareSupervisedClassificationDataset(
        [src.dataset],
        data_attributes=[
            DataAttribute(src.targets, "targets"),
            TaskLabels(ConstantSequence(0, n)),
            DataAttribute(list(range(n)), SAMPLE_INDEX_ATTR, use_in_getitem=True),
        ],
        transform_groups=TransformGroups({"train": ToTensor(), "eval": ToTensor()}),
    )
    model = _tiny_model(10)
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        criterion=nn.CrossEntropyLoss(),
        eval_mb_size=32,
        evaluator=_evaluator(),
    )
    results = strategy.eval(benchmark_from_datasets(test=[trap]).test_stream)
    tasks = {k.split("/")[3] for k in results if k.startswith("Top1_ClassAcc_Stream")}
    assert len(tasks) > 1
