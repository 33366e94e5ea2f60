"""Defaults that learn (issue 23): every registered method, built as a user's script builds it
(only the model, the memory and the device given; ``benchmarks/default_learning.py``), learns
above chance with its constructor defaults on a small real-image stream, and the defaults are the offline proxies' tuned values by the
rule ``avalanche_clip.strategies.defaults`` documents.

Streams: scikit-learn's digits, class-incremental 5 x 2 (60 train / 10 test images per class), for
the replay methods and the joint bounds; PACS, domain-incremental (10 train / 10 test images per
class and domain; needs ``data_root``), for the memory-free methods, which cannot keep old classes
class-incrementally (naive fine-tuning over every seen class's logits ends at chance there). The offline
ImageNet effnet-lite0-clip at 64 px, its trunk frozen and cached, its projections trained.

Margins, measured with ``benchmarks/default_learning.py`` at these sizes over seeds 0, 1, 2
(minimum over seeds), before issue 22's batch negatives: on digits every replay method and joint
bound exceeded chance (0.1) by >= 0.15 and naive fine-tuning (then 0.100 at every seed) by >= 0.15
(the closest: replay, 0.250); the tests assert 0.1 over chance. Under the batch negatives naive
fine-tuning keeps 0.43 (seed 0), no longer a floor at chance. iCaRL, scored with the prompt head since issue 22, is the exception: its
nearest-mean classifier learns, its prompt head does not (its own test below). On PACS naive fine-tuning and EWC exceed chance (1/7) by >= 0.28, CaSSLe by
0.082; the tests assert 0.05.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import math
from pathlib import Path

import pytest

from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.strategies import STRATEGIES, StrategySetup, build_strategy, strategy_info
from avalanche_clip.strategies.cassle import CaSSLeStrategy
from avalanche_clip.strategies.co2l import Co2LStrategy
from avalanche_clip.strategies.contrastive import GCLStrategy, GDROStrategy
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS, default_lr, derive_default
from avalanche_clip.strategies.der import DERStrategy
from avalanche_clip.strategies.foster import FOSTERStrategy
from avalanche_clip.strategies.registry import search_space, strategy_hparams

ROOT = Path(__file__).resolve().parents[1]
PROXY_TUNED = [ROOT / "experiments/results/cifar10_proxy_tune/tuned.yaml",
               ROOT / "experiments/results/pacs_proxy_tune/tuned.yaml"]
MARGIN = 0.1
PACS_MARGIN = 0.05
DIGITS = {"max_train_per_class": 60, "max_test_per_class": 10}
PACS = {"max_train_per_class": 10, "max_test_per_class": 10}
#: Class-incremental on digits: the replay methods (memory 100) and the joint bounds.
REPLAY = ["replay", "der", "co2l", "foster", "gcl", "gdro", "icarl", "zscl"]
JOINT = ["joint", "joint-converged"]
#: Domain-incremental on PACS: the methods without memory.
MEMORY_FREE = ["naive", "ewc", "cassle"]


def _script():
    spec = importlib.util.spec_from_file_location("default_learning", ROOT / "benchmarks/default_learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


default_learning = _script()


def test_every_trained_method_is_measured():
    """``ce`` is naive and replay (the same factory restricted to a memory use), zero-shot never
    trains: every other registered method is in one of the lists below."""
    trained = {name for name in STRATEGIES if strategy_info(name).trains}
    assert trained == {*REPLAY, *JOINT, *MEMORY_FREE, "ce"}
    assert METHOD_DEFAULTS["naive"] is METHOD_DEFAULTS["ce"] is METHOD_DEFAULTS["replay"]


def test_defaults_are_the_proxies_tuned_values_by_the_documented_rule():
    tuned = [read_yaml(path.read_text())["strategies"] for path in PROXY_TUNED]
    methods = sorted({name for proxy in tuned for name in proxy})
    assert "gcl" in methods and "cassle" in methods and "foster" in methods
    for method in methods:
        entries = [proxy[method] for proxy in tuned if method in proxy]
        for name, spec in entries[0]["space"].items():
            derived = derive_default([entry["params"][name] for entry in entries], spec)
            assert METHOD_DEFAULTS[method][name] == derived, (method, name)
    # the rule on two numbers: geometric mean on a log scale, one significant digit
    assert derive_default([1e-5, 1e-3], {"low": 1e-6, "high": 1.0, "log": True}) == 1e-4
    assert derive_default([0.9546], {"low": 0.9, "high": 0.999}) == 0.95  # 1.0 would leave the space


def test_factories_and_strategy_classes_take_the_derived_defaults():
    for name in STRATEGIES:
        hparams = strategy_hparams(name)
        for key in search_space(name):
            if key not in ("lr", "train_epochs"):
                assert hparams[key] == METHOD_DEFAULTS[name][key], (name, key)
    classes = {"gcl": GCLStrategy, "gdro": GDROStrategy, "der": DERStrategy, "co2l": Co2LStrategy,
               "foster": FOSTERStrategy, "cassle": CaSSLeStrategy}
    for name, cls in classes.items():
        parameters = inspect.signature(cls.__init__).parameters
        for key, value in METHOD_DEFAULTS[name].items():
            if key != "lr":
                assert parameters[key].default == value, (name, key)


@pytest.fixture(scope="module")
def digits_stream(tmp_path_factory):
    """The user's digits stream (with the sample index; iCaRL drops it from the items) and
    naive's final accuracy on it (the floor the replay methods must beat)."""
    cache = tmp_path_factory.mktemp("defaults-cache")
    stream = default_learning.user_stream(cache_dir=cache, scenario_options=DIGITS)
    return stream, default_learning.train_with_defaults("naive", *stream)


def test_a_setup_without_a_learning_rate_builds_each_method_with_its_default(digits_stream):
    benchmark, classifier = digits_stream[0]
    for name in ("gcl", "der", "joint"):
        memory = 0 if strategy_info(name).memory == "none" else 10
        setup = StrategySetup(classifier=copy.deepcopy(classifier), benchmark=benchmark, mem_size=memory)
        strategy = build_strategy(name, setup)
        assert strategy.optimizer.param_groups[0]["lr"] == default_lr(name)
        assert strategy.train_epochs == 5
    setup = StrategySetup(classifier=copy.deepcopy(classifier), benchmark=benchmark, lr=0.02)
    given = build_strategy("gcl", setup)
    assert given.optimizer.param_groups[0]["lr"] == 0.02  # an explicit rate is every method's
    with pytest.raises(ValueError, match="lr is None"):
        StrategySetup(classifier=classifier, benchmark=benchmark).make_optimizer(classifier)


#: iCaRL's records score the prompt head (issue 22), which its training does not teach to
#: discriminate: test_icarls_features_learn_but_its_prompt_head_does_not measures it apart.
HEAD_LEARNS = [m for m in REPLAY if m != "icarl"]


@pytest.mark.parametrize("method", HEAD_LEARNS + JOINT)
def test_replay_methods_and_joint_bounds_learn_with_their_defaults(digits_stream, method):
    (benchmark, classifier), naive = digits_stream
    accuracy = default_learning.train_with_defaults(method, benchmark, classifier, mem_size=100)
    chance = default_learning.CHANCE["digits"]
    assert accuracy > chance + MARGIN, (method, accuracy)
    # No-memory fine-tuning is no floor at chance under the protocol's default negatives
    # (train_logits="batch": its cross-entropy never pushes the old classes' prompts down): it
    # keeps 0.43 here, where it ended at chance (0.100) over every seen class's logits, and the
    # embedded default shows replay CE below it at memories 20 to 100 (experiments/README.md).
    assert naive > chance + MARGIN, naive


def test_icarls_features_learn_but_its_prompt_head_does_not(digits_stream):
    """iCaRL is scored with the prompt head like every method; its nearest-mean classifier's
    accuracy is recorded beside (``ncm_stream_accuracy``). Avalanche's iCaRL loss is a binary
    cross-entropy on the sigmoid of every class's logit, with target 0 for the classes not seen
    yet: on the prompt head's bounded logits ``s·a·b_k`` (no bias) it pushes every class down
    and the head stops discriminating, while the features it trains separate the classes.
    Measured over seeds 0, 1, 2: head 0.20, 0.10, 0.19; nearest mean 0.61, 0.62, 0.65. The
    test asserts the nearest mean above chance and naive by the margin, and the head more than
    0.3 below it; when the head learns, this fails: put iCaRL back among the methods that learn."""
    (benchmark, classifier), naive = digits_stream
    strategy, metrics = default_learning.trained_with_defaults("icarl", benchmark, classifier, mem_size=100)
    chance = default_learning.CHANCE["digits"]
    nearest = strategy.extra_record_fields()["ncm_stream_accuracy"]
    assert nearest > chance + MARGIN and nearest > naive + MARGIN, (nearest, naive)
    head = metrics[default_learning.STREAM_ACCURACY]
    assert head < nearest - 0.3, (head, nearest)


@pytest.fixture(scope="module")
def pacs_stream(data_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("defaults-pacs-cache")
    return default_learning.user_stream(scenario="pacs", data_root=str(data_root / "pacs"), cache_dir=cache,
                                        scenario_options=PACS)


@pytest.mark.parametrize("method", MEMORY_FREE)
def test_memory_free_methods_learn_with_their_defaults(pacs_stream, method):
    accuracy = default_learning.train_with_defaults(method, *pacs_stream, mem_size=0)
    chance = default_learning.CHANCE["pacs"]
    assert math.isclose(chance, 1 / 7)
    assert accuracy > chance + PACS_MARGIN, (method, accuracy)
