"""The tuned values of a ``tuned.yaml`` (written by ``avalanche-clip tune``) as a Markdown table.

One row per (strategy, tuned memory size): the best validation accuracy with its standard error
(a binomial one over the validation images, as ``tune`` records it), the values the sweep applies,
and what a reader must know about them: a value at a bound of its space (``at_bound``), a
learning rate moved by the closing line search (``lr_search``) and each bound walk
(``bound_walks``: the value it moved, or where past the bound it scored no better); below the table, why each line
search stopped (``neighbours lower``: ``lr/3`` and ``lr·3`` both scored lower on validation).
Nothing in it is typed by hand; ``experiments/claims.py`` writes it into
``experiments/README.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avalanche_clip.common.yaml_io import read_yaml


def _number(value: Any) -> str:
    """A value as the table shows it: 3 significant digits for floats."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.3g}"


def _notes(study: dict[str, Any]) -> str:
    notes = []
    for bound in study.get("at_bound") or []:
        notes.append(f"{bound['param']} at the {bound['bound']} bound of {bound['space']}")
    search = study.get("lr_search") or {}
    start, lr = search.get("start_lr"), search.get("lr")
    if start is not None and lr is not None and start != lr:
        notes.append(f"lr {_number(float(start))} → {_number(float(lr))} by the line search")
    for walk in study.get("bound_walks") or []:
        start, value = float(walk["start_value"]), float(walk["value"])
        scored = [point for point in walk.get("scored") or [] if "score" in point]
        if start != value:
            notes.append(f"{walk['param']} {_number(start)} → {_number(value)} by the bound walk")
        elif scored:
            notes.append(f"{walk['param']} scored past its {walk['bound']} bound at {_number(float(scored[-1]['value']))}: "
                         "no better")
        else:
            notes.append(f"{walk['param']}: the strategy refuses values past its {walk['bound']} bound (its limit)")
    return "; ".join(notes)


def tuned_table(path: str | Path) -> str:
    """``path``'s studies as a Markdown table (strategies in the file's order, memory ascending).

    Raises:
        ValueError: the file holds no ``strategies`` mapping (not a ``tuned.yaml``).
    """
    tuned = read_yaml(Path(path).read_text(encoding="utf-8"))
    strategies = tuned.get("strategies") if isinstance(tuned, dict) else None
    if not isinstance(strategies, dict):
        raise ValueError(f"{path}: no 'strategies' mapping; expected a tuned.yaml of avalanche-clip tune")
    lines = [
        "| method | tuned at memory | validation acc. (%) | tuned values | notes |",
        "|---|---:|---:|---|---|",
    ]
    stops: dict[str, int] = {}
    for strategy, entry in strategies.items():
        for memory, study in sorted((entry.get("by_mem_size") or {}).items()):
            stop = (study.get("lr_search") or {}).get("stopped", "no line search recorded")
            stops[stop] = stops.get(stop, 0) + 1
            values = ", ".join(f"{k} {_number(v)}" for k, v in sorted(study["params"].items()))
            error = study.get("standard_error")
            accuracy = f"{100 * study['value']:.1f}" + (f" ± {100 * error:.1f}" if error else "")
            lines.append(f"| {strategy} | {memory} | {accuracy} | {values} | {_notes(study)} |")
    studies = sum(stops.values())
    why = "; ".join(f"{n} of {studies}: {stop}" for stop, n in sorted(stops.items()))
    lines += ["", f"Where each study's learning-rate line search stopped ({why})."]
    return "\n".join(lines) + "\n"
