"""Issue 7's done-when: training on the feature cache gives the results of training through the
frozen tower.

The cache encodes every image once with the model's *eval* transform, so training on it sees
un-augmented images; without the cache a run trains on the model's *train* transform (random
resized crops). The uncached run is therefore prepared with ``augment=False`` (train on the eval
transform too), which is the only difference the cache is allowed to remove. Everything else —
the stream, the order of the mini-batches, the replay memory, the seeds — is the same, so the
two runs differ only by floating-point rounding: the cached trunk runs on batches of
``eval_mb_size`` images, the uncached one on training batches, and matrix products of other
shapes round differently (~1e-7). That is far below what flips a prediction here, so the
accuracies must be equal and the trained weights equal to 1e-4 (they agree to ~1e-5).

One exception: the key bias of an attention layer (rows W..2W of ``attn.in_proj_bias``) has a
gradient of exactly zero — it adds ``q·b`` to every logit of a query, which the softmax ignores —
so its computed gradient is pure rounding noise, which AdamW divides by its own RMS and turns into
steps of up to ``lr``, in unrelated directions in the two runs (~5e-4 here, in the text tower too,
which is never cached). It is left out of the comparison; it does not change any output.
"""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.features import clear_memory
from avalanche_clip.pipeline.config import resolve_config
from avalanche_clip.pipeline.run import prepare_run
from avalanche_clip.pipeline.run_loop import ContinualRun, read_records

COMPARED = ("experience", "stream_accuracy", "accuracy_per_experience", "forgetting", "final",
            "zero_shot_accuracy")


def _train(tmp_path, *, feature_cache: bool, trainable: str, strategy: str):
    config = resolve_config([{
        "scenario": "digits", "n_experiences": 2,
        "scenario_options": {"max_train_per_class": 12, "max_test_per_class": 6},
        "model": "tiny-clip", "pretrained": None, "trainable": trainable,
        "strategy": strategy, "mem_size": 10, "train_epochs": 2, "train_mb_size": 8,
        "eval_mb_size": 64, "lr": 0.001, "feature_cache": feature_cache,
        "cache_dir": str(tmp_path / "cache"), "progress": False,
    }])
    prepared = prepare_run(config, augment=False)
    assert (getattr(prepared.benchmark, "feature_cache", None) is not None) == feature_cache
    out = tmp_path / ("cached" if feature_cache else "uncached")
    initial = {name: p.detach().clone() for name, p in prepared.classifier.clip.named_parameters()
               if p.requires_grad}
    ContinualRun(prepared.strategy, prepared.benchmark, identity=prepared.identity,
                 records_path=out / "results.jsonl", progress=False).run()
    trained = {name: p.detach().clone() for name, p in prepared.classifier.clip.named_parameters()
               if p.requires_grad}
    return read_records(out / "results.jsonl"), initial, trained


@pytest.mark.parametrize("trainable, strategy", [
    ("projections", "gcl"),  # cache of pooled trunk features; the projections train
    ("last:1", "gcl"),  # cache of the tokens before the last block, which trains
    ("projections", "ewc"),  # Avalanche's EWC plugin (importances from the cached path) on the same cache
])
def test_training_on_the_cache_equals_training_through_the_frozen_tower(tmp_path, trainable, strategy):
    clear_memory()
    cached_records, initial, cached_weights = _train(tmp_path, feature_cache=True,
                                                     trainable=trainable, strategy=strategy)
    plain_records, plain_initial, plain_weights = _train(tmp_path, feature_cache=False,
                                                         trainable=trainable, strategy=strategy)

    assert len(cached_records) == 2
    for cached, plain in zip(cached_records, plain_records, strict=True):
        assert {k: cached[k] for k in COMPARED} == {k: plain[k] for k in COMPARED}
    assert cached_weights.keys() == plain_weights.keys()
    assert any(name.startswith("visual.") for name in cached_weights)  # the image tail trained
    for name, weight in initial.items():
        torch.testing.assert_close(weight, plain_initial[name], rtol=0, atol=0, msg=name)
    moved = max((cached_weights[n] - initial[n]).abs().max().item() for n in initial)
    assert moved > 100 * 1e-4, "training hardly moved the weights: the comparison would be vacuous"
    for name, weight in cached_weights.items():
        other = plain_weights[name]
        if name.endswith("attn.in_proj_bias"):  # q, k, v biases: leave out k (see the docstring)
            width = len(weight) // 3
            weight = torch.cat([weight[:width], weight[2 * width:]])
            other = torch.cat([other[:width], other[2 * width:]])
        torch.testing.assert_close(weight, other, rtol=0, atol=1e-4, msg=name)
    clear_memory()

