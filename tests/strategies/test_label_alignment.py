"""Class names must name the benchmark's labels: a benchmark that relabels classes gets its names
reordered by CLIPClassifier.for_benchmark, and a detectable mismatch is an error."""

from __future__ import annotations

import pytest
from avalanche.benchmarks import nc_benchmark
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.models import CLIPClassifier, create_clip
from avalanche_clip.models.label_alignment import check_label_alignment
from avalanche_clip.strategies import GCLStrategy, StrategySetup, build_strategy

ORDER = [5, 6, 1, 2, 0, 8, 9, 3, 4, 7]


def _relabelled():
    train, test, names = digits(8)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, fixed_class_order=ORDER,
                             class_ids_from_zero_from_first_exp=True)
    return benchmark, names


def test_for_benchmark_names_classes_by_the_benchmarks_labels():
    benchmark, names = _relabelled()
    clip, _, _, tokenizer = create_clip("tiny-clip")
    classifier = CLIPClassifier.for_benchmark(clip, tokenizer, names, benchmark)
    assert classifier.class_names == [names[c] for c in ORDER]  # label k is original class ORDER[k]
    first = benchmark.train_stream[0]
    assert sorted(first.classes_in_this_experience) == [0, 1]
    assert {classifier.class_names[k] for k in (0, 1)} == {"five", "six"}
    strategy = GCLStrategy(model=classifier, optimizer=optimizer(classifier), train_mb_size=8)
    strategy.train(first)  # aligned: trains


def test_names_listed_by_the_original_labels_are_refused_on_a_relabelled_benchmark():
    benchmark, names = _relabelled()
    model = tiny_classifier(names)
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8)
    with pytest.raises(ValueError, match=r"this benchmark relabels classes \(class_mapping \[4, 2, 3, 7, 8, 0, 1, 9, 5, 6\].*CLIPClassifier.for_benchmark"):
        strategy.train(benchmark.train_stream[0])
    setup = StrategySetup(classifier=model, benchmark=benchmark)
    with pytest.raises(ValueError, match="this benchmark relabels classes"):
        build_strategy("gcl", setup)


def test_labels_beyond_the_class_names_are_refused():
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    model = tiny_classifier(["zero", "one", "two", "three", "four"])
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8)
    strategy.train(benchmark.train_stream[0])
    with pytest.raises(ValueError, match=r"labels \[6, 7\] are outside the classifier's 5 classes \('zero', 'one'"):
        strategy.train(benchmark.train_stream[3])


def test_labels_restarting_in_each_experience_are_refused():
    train, test, names = digits(8)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=True, class_ids_from_zero_in_each_exp=True)
    with pytest.raises(ValueError, match="restarts class ids from zero in each experience"):
        check_label_alignment(tiny_classifier(names), benchmark)


def test_an_identity_mapping_needs_nothing():
    train, test, names = digits(8)
    benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False,
                             fixed_class_order=list(range(10)), class_ids_from_zero_from_first_exp=True)
    check_label_alignment(tiny_classifier(names), benchmark)  # labels unchanged: no error
