"""Task-incremental benchmarks (issue 23, part 4): with task labels, GCL / GDRO / CE predict among
the classes of each item's task (one head of prompts per task) and train with each label read as
the class it names in its task, whether labels are global ids or restart in each experience."""

from __future__ import annotations

import functools

import pytest
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, LwFPlugin
from avalanche_fixtures import digits, optimizer
from common import digit_datasets

from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy

ORDER = [5, 6, 1, 2, 0, 8, 9, 3, 4, 7]
STRATEGIES = {"gcl": GCLStrategy, "gdro": GDROStrategy, "ce": CLIPCrossEntropyStrategy}


@functools.lru_cache(maxsize=1)
def _pretrained_digits():
    """Digits at 64 px for the ImageNet effnet-lite0-clip (16 per class): a model whose
    predictions vary from image to image, unlike the random tiny CLIP's."""
    _, _, eval_tf, _ = create_clip("effnet-lite0-clip", "imagenet", image_size=64)
    return digit_datasets(eval_tf, max_per_class=16)


def _task_benchmark(local: bool, pretrained: bool):
    train, test, names = _pretrained_digits() if pretrained else digits(8)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=True, fixed_class_order=ORDER,
                             class_ids_from_zero_in_each_exp=local)
    return benchmark, names


def _classifier(names, benchmark, local: bool, pretrained: bool) -> CLIPClassifier:
    torch.manual_seed(0)
    if pretrained:
        clip, _, _, tokenizer = create_clip("effnet-lite0-clip", "imagenet", image_size=64)
        set_trainable(clip, "projections")
    else:
        clip, _, _, tokenizer = create_clip("tiny-clip")
        set_trainable(clip, "last:1")
    if not local:  # global ids: the classifier a user builds anyway; the strategy gives it heads
        return CLIPClassifier(clip, tokenizer, names, templates="digit")
    return CLIPClassifier.for_benchmark(clip, tokenizer, names, benchmark, templates="digit")


def _train_two_tasks(name: str, local: bool, mem_size: int = 4, pretrained: bool = False):
    benchmark, names = _task_benchmark(local, pretrained)
    classifier = _classifier(names, benchmark, local, pretrained)
    strategy = STRATEGIES[name](
        model=classifier, optimizer=optimizer(classifier, lr=1e-2), train_mb_size=8, mem_size=mem_size,
        seed=0, evaluator=EvaluationPlugin(accuracy_metrics(experience=True)))
    for t in range(2):
        strategy.train(benchmark.train_stream[t])
    results = strategy.eval(benchmark.test_stream[:3])  # the third task is not trained yet
    return benchmark, names, classifier, results, strategy


def _reference_accuracy(classifier, names, experience, local: bool) -> float:
    """By hand: the classifier's logits over every class, restricted to the task's classes in
    the order of its labels, argmax = the predicted label."""
    benchmark = experience.origin_stream.benchmark
    originals = sorted(benchmark.original_classes_in_exp[experience.current_experience])
    if local:  # label y of this task names the original class that class_mapping maps to y
        label_classes = sorted(originals, key=lambda o: benchmark.class_mapping[o])
        label_of = list(range(len(originals)))
    else:
        label_classes = label_of = originals
    classifier.eval()
    correct = total = 0
    loader = torch.utils.data.DataLoader(experience.dataset.eval(), batch_size=64)
    with torch.no_grad():
        for x, y, _ in loader:
            every_class = classifier.logits_of(classifier.encode_images(x), torch.arange(len(names)))
            predicted = every_class[:, label_classes].argmax(1)
            correct += int((torch.tensor(label_of)[predicted] == y).sum())
            total += len(y)
    return correct / total


@pytest.mark.parametrize("local", [True, False], ids=["ids-from-zero-in-each-exp", "global-ids"])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_task_aware_accuracy_is_the_argmax_over_the_items_task_classes(name, local):
    benchmark, names, classifier, results, _ = _train_two_tasks(name, local, pretrained=True)
    for e, experience in enumerate(benchmark.test_stream[:3]):
        reported = results[f"Top1_Acc_Exp/eval_phase/test_stream/Task{e:03d}/Exp{e:03d}"]
        assert reported == _reference_accuracy(classifier, names, experience, local), (name, e)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_labels_restarting_in_each_task_train_the_classes_they_name(name):
    """Labels 0, 1 of task 1 are classes 1 and 2: training on them (memory included) moves the
    same weights as training on the global ids 1, 2."""
    runs = [_train_two_tasks(name, local, mem_size=4) for local in (True, False)]
    (_, _, local_model, local_results, _), (_, _, global_model, global_results, _) = runs
    assert local_results == global_results
    assert local_model.task_heads.heads[1] == {0: 1, 1: 2}
    memories = [strategy.replay.memory.class_counts() for strategy in (runs[0][4], runs[1][4])]
    assert memories[0] == memories[1] == {5: 1, 6: 1, 1: 1, 2: 1}  # one quota per class
    for (key, a), b in zip(local_model.state_dict().items(), global_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)


def test_a_class_incremental_benchmark_keeps_one_head():
    train, test, names = digits(8)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, fixed_class_order=ORDER)
    classifier = CLIPClassifier.for_benchmark(*create_clip("tiny-clip")[::3], names, benchmark)
    strategy = GCLStrategy(model=classifier, optimizer=optimizer(classifier), train_mb_size=8)
    strategy.train(benchmark.train_stream[0])
    strategy.eval(benchmark.test_stream[:2])
    assert classifier.task_heads is None


def test_lwf_on_task_labels_is_refused_instead_of_training_on_a_nan_penalty():
    benchmark, names = _task_benchmark(local=False, pretrained=False)
    classifier = _classifier(names, benchmark, local=False, pretrained=False)
    strategy = CLIPCrossEntropyStrategy(model=classifier, optimizer=optimizer(classifier), train_mb_size=8,
                                        plugins=[LwFPlugin()])
    with pytest.raises(ValueError, match="LwFPlugin distils one head over every class, but this benchmark has task labels"):
        strategy.train(benchmark.train_stream[0])


def test_an_item_of_a_task_without_a_head_is_refused_naming_the_known_tasks():
    benchmark, names = _task_benchmark(local=True, pretrained=False)
    classifier = _classifier(names, benchmark, local=True, pretrained=False)
    x = benchmark.test_stream[0].dataset.eval()[0][0][None]
    assert classifier(x, torch.tensor([3])).shape == (1, 2)  # task 3's two labels
    with pytest.raises(ValueError, match=r"task label\(s\) \[7\] have no head; the classifier knows tasks \[0, 1, 2, 3, 4\]"):
        classifier(x, torch.tensor([7]))
