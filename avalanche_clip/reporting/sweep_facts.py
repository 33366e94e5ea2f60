"""What a sweep's records say about how it was run, and each run's retention drop per held-out set.

Read from the final record of every finished run (:func:`~avalanche_clip.reporting.records.final_records`),
so that a text stating the protocol of a results table (``experiments/claims.py``) types no value
by hand:

- **negatives** (``train_logits``): ``batch`` (the logits range over the batch's classes) or
  ``seen`` (over every class seen so far), one protocol value for every method of a sweep.
  Records written before it was recorded carry none, and the text says so.
- **views** (``feature_views`` ``V``, ``views_per_item`` ``k``): recorded only by runs on ``V > 1``
  cached augmented views, ``k`` of which each training item gets; a run without them had one
  un-augmented view per image (``V = k = 1``).
- **iCaRL's score**: its ``stream_accuracy`` is the shared prompt head's when the record also has
  ``ncm_stream_accuracy`` (the nearest-mean classifier's, recorded beside it); records without
  it were written when iCaRL's ``stream_accuracy`` was its nearest-mean-of-exemplars classifier's.

**Retention drops** (:func:`retention_drops`): for a finished run ``r`` (strategy label ``a``,
memory ``M``, seed ``s``) and a held-out set ``h``, ``D_{r,h} = R^0_{r,h} − R_{r,h}``
(``retention_drop[h]``: the untrained model's zero-shot accuracy on ``h`` minus the run's after
its last experience, :mod:`avalanche_clip.pipeline.retention`), as ``{h: {(a, M): {s: D}}}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from avalanche_clip.reporting.records import final_records

#: ``{held-out set: {(strategy label, memory size): {seed: retention drop}}}``
Drops = dict[str, dict[tuple[str, int], dict[int, float]]]


def _present(value: object) -> bool:
    """A recorded value: not a missing key (``None``/NaN after :func:`load_records`)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _column(finals: pd.DataFrame, key: str) -> pd.Series:
    """``finals[key]``, or all missing when no record has the key."""
    return finals[key] if key in finals else pd.Series([None] * len(finals), index=finals.index)


def _methods(finals: pd.DataFrame) -> pd.Series:
    """The registered strategy of each run (``method``; the label for records without one)."""
    return _column(finals, "method").where(_column(finals, "method").map(_present), finals["strategy"])


def _join(names: Iterable[str]) -> str:
    return ", ".join(sorted(set(names)))


def negatives_text(finals: pd.DataFrame) -> str:
    """``train_logits=<value>`` when every run recorded one value; else which runs recorded what."""
    values = _column(finals, "train_logits").map(lambda v: str(v) if _present(v) else None)
    if values.isna().all():
        return "train_logits not recorded (records written before it was)"
    if values.notna().all() and values.nunique() == 1:
        return f"train_logits={values.iloc[0]}"
    by_value = finals["strategy"].groupby(values.fillna("not recorded")).agg(_join)
    return "train_logits differs: " + "; ".join(f"{value} ({names})" for value, names in by_value.items())


def views_text(finals: pd.DataFrame) -> str:
    """How many views of each training image the runs had (module docstring)."""
    views = _column(finals, "feature_views").map(lambda v: int(v) if _present(v) else 1)
    per_item = _column(finals, "views_per_item").map(lambda v: int(v) if _present(v) else 1)
    groups = finals["strategy"].groupby([views, per_item]).agg(_join)
    if len(groups) == 1:
        (v, k), = groups.index
        if v == 1:
            return "one un-augmented view per image (no feature_views recorded)"
        return f"feature_views={v}, views_per_item={k}"
    return "views differ: " + "; ".join(
        f"feature_views={v}, views_per_item={k} ({names})" for (v, k), names in groups.items()
    )


def icarl_text(finals: pd.DataFrame) -> str | None:
    """Which classifier iCaRL's ``stream_accuracy`` scores (module docstring); None without iCaRL."""
    icarl = finals[_methods(finals) == "icarl"]
    if icarl.empty:
        return None
    head = int(_column(icarl, "ncm_stream_accuracy").map(_present).sum())
    if head == len(icarl):
        return "iCaRL scored by the prompt head (its nearest-mean accuracy recorded beside)"
    if head == 0:
        return ("iCaRL scored by its nearest-mean-of-exemplars classifier (records written before "
                "iCaRL was scored by the prompt head)")
    return (f"iCaRL scored by the prompt head in {head} of {len(icarl)} runs, by its nearest-mean "
            "classifier in the others (records written before the prompt-head score)")


def protocol_text(records: pd.DataFrame) -> str:
    """Negatives, views and (when iCaRL ran) iCaRL's score of a sweep's finished runs, ``; ``-joined."""
    finals = final_records(records)
    parts = [negatives_text(finals), views_text(finals), icarl_text(finals)]
    return "; ".join(part for part in parts if part)


def retention_drops(records: pd.DataFrame) -> Drops:
    """Every finished run's retention drop per held-out set (module docstring); ``{}`` when no run
    scored held-out sets."""
    finals = final_records(records)
    drops: Drops = {}
    for _, run in finals.iterrows():
        by_set = run.get("retention_drop")
        if not isinstance(by_set, dict):
            continue
        key, seed = (str(run["strategy"]), int(run["mem_size"])), int(run["seed"])
        for name, drop in by_set.items():
            drops.setdefault(str(name), {}).setdefault(key, {})[seed] = float(drop)
    return drops


__all__ = ["Drops", "icarl_text", "negatives_text", "protocol_text", "retention_drops", "views_text"]
