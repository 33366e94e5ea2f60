"""Constructor defaults of every method: what a user who does not tune gets.

Every default here is derived from the values ``avalanche-clip tune`` chose on the two offline
proxies (``experiments/results/cifar10_proxy_tune/tuned.yaml``: CIFAR-10, class-incremental;
``experiments/results/pacs_proxy_tune/tuned.yaml``: PACS, domain-incremental; 16 Optuna trials per
method on a validation split, memory 50, both with the recipe below), by one rule
(:func:`derive_default`, checked against those files by ``tests/test_defaults_learn.py``):

- a value tuned on both proxies: their geometric mean for a log-scale hyper-parameter (the
  learning rate, temperatures, loss weights), their arithmetic mean otherwise;
- a value tuned on one proxy (FOSTER and iCaRL are class-incremental only, CaSSLe ran on PACS
  only): that value;
- then rounded to one significant digit, or the fewest digits that keep it inside the method's
  search space (FOSTER's β: 0.9546 → 0.95, not 1).

ZSCL (``zscl``) is not tuned on the proxies yet: it takes CE's learning rate and its official
code's ``λ = 5`` and ensemble interval (a tenth of a task's steps: :mod:`avalanche_clip.strategies.zscl`).

Naive and Replay (``naive``, ``replay``) are ``ce`` restricted to a memory use, and take ``ce``'s
values; ``zero-shot`` never trains. The shared recipe is the one the proxies were tuned under
(``tuned_for`` in both files): 5 epochs per experience, AdamW with weight decay 0.01 (these are
:class:`~avalanche_clip.strategies.setup.StrategySetup`'s defaults; the batch size stays 32).

| method | hyper-parameter | CIFAR-10 proxy | PACS proxy | default |
|---|---|---:|---:|---:|
| ce (naive, replay) | lr | 1.20e-05 | 7.99e-04 | 1e-4 |
| ewc | lr | 5.46e-05 | 1.20e-03 | 3e-4 |
| ewc | ewc_lambda | 6.79e+05 | 4.05e+03 | 5e4 |
| der | lr | 6.15e-05 | 7.27e-04 | 2e-4 |
| der | alpha | 0.289 | 0.0305 | 0.09 |
| der | beta | 0.876 | 0.453 | 0.7 |
| icarl | lr | 1.20e-04 | — | 1e-4 |
| co2l | lr | 5.16e-04 | 3.86e-04 | 4e-4 |
| co2l | tau | 0.245 | 0.0794 | 0.1 |
| co2l | kappa | 0.495 | 0.156 | 0.3 |
| co2l | kappa_past | 0.471 | 0.278 | 0.4 |
| co2l | ird_lambda | 3.82 | 0.248 | 1 |
| co2l | classifier_fraction | 0.422 | 0.166 | 0.3 |
| foster | lr | 1.74e-04 | — | 2e-4 |
| foster | beta1 | 0.9546 | — | 0.95 |
| foster | beta2 | 0.9626 | — | 0.96 |
| foster | temperature | 1.34 | — | 1 |
| foster | lambda_okd | 0.229 | — | 0.2 |
| foster | compression_fraction | 0.344 | — | 0.3 |
| cassle | lr | — | 2.96e-04 | 3e-4 |
| cassle | tau | — | 0.100 | 0.1 |
| cassle | distill_temperature | — | 0.168 | 0.2 |
| cassle | distill_lambda | — | 0.352 | 0.4 |
| cassle | classifier_fraction | — | 0.222 | 0.2 |
| gcl | lr | 1.44e-04 | 6.21e-04 | 3e-4 |
| gcl | tau | 0.349 | 0.0467 | 0.1 |
| gcl | gamma | 0.563 | 0.170 | 0.4 |
| gdro | lr | 1.07e-04 | 2.01e-04 | 1e-4 |
| gdro | tau | 0.577 | 0.158 | 0.3 |
| gdro | margin | 0.779 | 0.679 | 0.7 |
| gdro | dro_lambda | 0.456 | 4.78 | 1 |
| gdro | gamma | 0.659 | 0.482 | 0.6 |
| joint | lr | 1.26e-03 | 1.26e-03 | 1e-3 |
| joint-converged | lr | 1.19e-04 | 1.82e-03 | 5e-4 |
| joint-converged | budget_scale | 3.63 | 2.90 | 3 |

Hyper-parameters no tune chooses (GDRO's ``class_gamma``, Co2L's ``base_temperature``, the
projector sizes, ...) keep the values of the methods' papers, written in their constructors. The
command line is not affected: its configs give the learning rate (``lr``, default 1e-3), epochs
and weight decay themselves, and every committed sweep applies tuned values to every tuned
hyper-parameter. ``benchmarks/default_learning.py`` measures what these defaults learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Epochs per experience and AdamW weight decay of the recipe the proxies were tuned under.
TRAIN_EPOCHS = 5
WEIGHT_DECAY = 0.01
#: The choices of ``train_logits`` (:mod:`avalanche_clip.strategies.negatives`), the default first.
TRAIN_LOGITS = ("batch", "seen")

_CE = {"lr": 1e-4}

#: ``{method: {name: default}}``: the learning rate and the method's tuned hyper-parameters.
METHOD_DEFAULTS: dict[str, dict[str, float]] = {
    "ce": _CE,
    "naive": _CE,
    "replay": _CE,
    "zero-shot": _CE,  # never trains: the learning rate is moot
    "ewc": {"lr": 3e-4, "ewc_lambda": 5e4},
    "der": {"lr": 2e-4, "alpha": 0.09, "beta": 0.7},
    "icarl": {"lr": 1e-4},
    "co2l": {"lr": 4e-4, "tau": 0.1, "kappa": 0.3, "kappa_past": 0.4, "ird_lambda": 1.0,
             "classifier_fraction": 0.3},
    "foster": {"lr": 2e-4, "beta1": 0.95, "beta2": 0.96, "temperature": 1.0, "lambda_okd": 0.2,
               "compression_fraction": 0.3},
    "cassle": {"lr": 3e-4, "tau": 0.1, "distill_temperature": 0.2, "distill_lambda": 0.4,
               "classifier_fraction": 0.2},
    "gcl": {"lr": 3e-4, "tau": 0.1, "gamma": 0.4},
    "gdro": {"lr": 1e-4, "tau": 0.3, "margin": 0.7, "dro_lambda": 1.0, "gamma": 0.6},
    "joint": {"lr": 1e-3},
    "joint-converged": {"lr": 5e-4, "budget_scale": 3.0},
    # not tuned on the proxies yet: CE's learning rate and the official code's λ and interval
    # (avalanche_clip.strategies.zscl)
    "zscl": {"lr": _CE["lr"], "distill_lambda": 5.0, "ensemble_fraction": 0.1},
}


def default_lr(method: str) -> float:
    """The learning rate ``method`` trains with when none is given."""
    if method not in METHOD_DEFAULTS:
        raise ValueError(f"strategy {method!r} has no default learning rate (methods with one: "
                         f"{', '.join(sorted(METHOD_DEFAULTS))}): give StrategySetup(lr=...)")
    return METHOD_DEFAULTS[method]["lr"]


def round_into(value: float, spec: Mapping[str, Any]) -> float:
    """``value`` to one significant digit, or the fewest significant digits that keep it in
    ``spec``'s ``[low, high]`` (a search-space spec, :mod:`avalanche_clip.strategies.spaces`)."""
    if not math.isfinite(value) or value == 0:
        raise ValueError(f"cannot round {value!r} to significant digits: expected a finite, non-zero number")
    for digits in range(1, 16):
        rounded = float(f"{value:.{digits}g}")
        if spec["low"] <= rounded <= spec["high"]:
            return rounded
    raise ValueError(f"{value!r} lies outside [{spec['low']}, {spec['high']}]")


def derive_default(tuned: Sequence[float], spec: Mapping[str, Any]) -> float:
    """The default from the values tuned on the proxies (one or two; module docstring):
    the geometric mean ``exp(mean(log v))`` on a log-scale ``spec``, else the arithmetic mean,
    rounded by :func:`round_into`."""
    if not tuned:
        raise ValueError("derive_default needs at least one tuned value, got none")
    if spec.get("log"):
        mean = math.exp(sum(math.log(v) for v in tuned) / len(tuned))
    else:
        mean = sum(tuned) / len(tuned)
    return round_into(mean, spec)
