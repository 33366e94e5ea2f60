"""Finish a ``tuned.yaml`` written before tunes ended with bound walks: ``avalanche-clip walk-bounds``.

A tune now ends every study with its line search, then the bound walk
(:mod:`avalanche_clip.pipeline.tune_walk`). A file written before the walk existed holds the
same studies up to the line search; this module adds what the walk would have added, study by
study: every value within 5 % of a bound of its space is walked past it on the tune's validation
split (:func:`~avalanche_clip.pipeline.tune.walk_study`, the very function a tune calls), and the
study's ``params``, ``value``, ``standard_error``, ``at_bound``, ``bound_walks`` and ``widened``
are rewritten; nothing else changes. A study that already records its walks is left as it is, so
the command is idempotent.

Scores are compared with the study's recorded best value, so the walk must score as the tune
did: the tune settings that choose the validation split must agree (as in ``check-optimum``),
the runs use the study's torch thread count, and before walking a study its tuned values are
re-scored, which must give its recorded value bit for bit (else ``OptimumMismatchError``: the
file was tuned on another machine, thread count or code). With ``rescore`` such a study is walked
from its re-score instead: ``value`` becomes what its values score here (the tune's kept as
``tune_value``), so the walk compares points scored alike, and ``check-optimum`` re-scores it here. The result goes to ``<out>/tuned.yaml``, never
over the file read, and a finished one there is refused rather than overwritten.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.pipeline.tune import study_name, validation_score, walk_study
from avalanche_clip.pipeline.tune_optimum import OptimumMismatchError, scoring_settings
from avalanche_clip.pipeline.tune_quality import standard_error, values_at_bound, warn_at_bound
from avalanche_clip.pipeline.tune_threads import record_threads
from avalanche_clip.pipeline.tuned_values import load_tuned, read_tuned
from avalanche_clip.strategies.registry import search_space
from avalanche_clip.strategies.spaces import widen

HEADER = ("# Written by `avalanche-clip walk-bounds`: a tuned.yaml of `avalanche-clip tune` whose\n"
          "# studies' values at a bound were walked past it (bound_walks, widened). Apply with\n"
          "# `avalanche-clip sweep --tuned <this file>`.\n")


def walk_tuned(config: SweepConfig | dict[str, Any], tuned: str | Path, out_dir: str | Path, *,
               rescore: bool = False, progress: bool = True) -> dict[str, Any]:
    """Walk the studies of ``tuned`` (a ``tuned.yaml`` of the sweep ``config``) into
    ``out_dir/tuned.yaml`` (module docstring). Returns ``{"tuned": path, "walked": [(label,
    mem_size, walks)], "wall_time_s": seconds}``."""
    config = parse_sweep_config(config)
    load_tuned(config, tuned)  # the protocol and every value checked as a sweep checks them
    document = read_tuned(tuned)
    settings = scoring_settings(config, document)
    out = Path(out_dir)
    target = out / "tuned.yaml"
    if target.exists():
        raise ConfigError(f"{target} exists: walk-bounds does not write over a finished file; remove it or "
                          "choose another --out")
    if Path(tuned).resolve() == target.resolve():
        raise ConfigError(f"--out {out} would overwrite the file read ({tuned}); choose another folder")
    entries = {label: strategy for label, strategy, _ in config.entries}
    outside = sorted(set(document["strategies"]) - set(entries))
    if outside:
        raise ConfigError(f"tuned strategies {outside} are not strategies of the sweep config ({sorted(entries)})")
    studies = [(label, size, study) for label, entry in document["strategies"].items()
               for size, study in entry["by_mem_size"].items()]
    config = record_threads(config, {study_name(label, size): study for label, size, study in studies})
    began = time.perf_counter()
    walked = []
    for label, size, study in tqdm(studies, desc="bound walks", disable=not progress):
        if "bound_walks" in study or not math.isfinite(study.get("value", math.nan)):
            continue  # walked already, or nothing to walk from
        space = widen(search_space(entries[label], tune_epochs=settings.tune_epochs), study.get("widened"))
        started = time.perf_counter()
        if values_at_bound(study["params"], space):  # a walk will compare scores with the study's: same machine?
            here = _score_here(config, settings, label, size, study, out / "walk" / label / f"m{size}" / "tuned",
                               rescore=rescore)
            if here != study["value"]:  # rescore: walk from what its values score here, the tune's kept beside
                study["tune_value"], study["value"] = study["value"], here
        params, value, walks, widened = walk_study(config, settings, label, size, dict(study["params"]),
                                                   float(study["value"]), space,
                                                   out / "walk" / label / f"m{size}")
        at_bound = values_at_bound(params, widen(space, widened))
        warn_at_bound(study_name(label, size), at_bound)
        study.update(params=params, value=value, bound_walks=walks, widened=widened, at_bound=at_bound)
        if walks:
            study["standard_error"] = standard_error(value, study["validation_sizes"])
            study["wall_time_s"] = round(study.get("wall_time_s", 0.0) + time.perf_counter() - started, 1)
            walked.append((label, size, walks))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, HEADER + yaml.safe_dump(document, sort_keys=True))
    return {"tuned": target, "walked": walked, "wall_time_s": time.perf_counter() - began}


def _score_here(config: SweepConfig, settings: Any, label: str, mem_size: int, study: dict[str, Any],
                folder: Path, *, rescore: bool) -> float:
    """The study's tuned values re-scored here. Unless ``rescore``, ``OptimumMismatchError`` when
    that is not its recorded best value bit for bit (another machine, code or data: the walk's
    scores would not compare with it)."""
    score = validation_score(config, settings, label, dict(study["params"]), mem_size, folder, resume=True).value
    if score != study["value"] and not rescore:
        raise OptimumMismatchError(
            f"study {study_name(label, mem_size)}: re-scoring its tuned values {study['params']} on validation gives "
            f"{score!r}, but the study's best value is {study['value']!r}; the config, data, code or CPU differ from "
            "the tune's, so a walk's scores cannot be compared with it (re-run the tune on this machine, or pass "
            "--rescore to walk from the re-score)")
    return score


__all__ = ["walk_tuned"]
