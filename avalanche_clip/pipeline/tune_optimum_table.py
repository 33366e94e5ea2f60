"""The table of ``avalanche-clip check-optimum``: ``optimum.md`` and ``optimum.csv`` in its folder.

One row per (strategy, tuned memory size): the tuned learning rate and its validation score,
each neighbour's learning rate and score (blank when skipped), the best neighbour's gain
``g = max_j s_j - s_0``, the standard error ``SE`` of ``s_0``, each value at a bound of its space
re-scored past that bound, and the verdict (``optimum``: no neighbour and no value past a bound
better by more than ``SE``). The CSV holds the accuracies as fractions, unrounded (the tuned score equals the study's
``value`` in tuned.yaml); the markdown shows them in percent. A finished table is not replaced
silently: an existing non-empty file is refused unless ``force``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.tune_optimum import OPTIMUM, Beyond, OptimumCheck

TABLE_FILES = ("optimum.md", "optimum.csv")
COLUMNS = ("strategy", "registered_strategy", "mem_size", "lr", "score", "lr_down", "score_down", "lr_up",
           "score_up", "gain", "beyond_bound", "beyond_gain", "standard_error", "verdict", "notes")


def refuse_finished(out: str | Path, *, force: bool) -> None:
    """``ConfigError`` when ``out`` already holds a non-empty table (unless ``force``): before any work."""
    found = [Path(out) / name for name in TABLE_FILES if (Path(out) / name).is_file()
             and (Path(out) / name).stat().st_size > 0]
    if found and not force:
        raise ConfigError(f"{found[0]} holds a finished optimum check; pass --force to write it again "
                          "(finished re-score runs are reused) or choose another --out")


def _notes(check: OptimumCheck) -> str:
    return "; ".join([*check.notes, *(n.note for n in check.neighbours if n.note),
                      *(b.note for b in check.beyond if b.note)])


def _beyond(item: Beyond, percent: bool) -> str:
    """``param=value: score`` (score in percent or as a fraction), or ``param: refused``."""
    if item.score is None:
        return f"{item.param}: refused"
    return f"{item.param}={item.value:.4g}: " + (f"{100 * item.score:.2f}" if percent else f"{item.score!r}")


def optimum_rows(checks: Sequence[OptimumCheck]) -> list[dict[str, object]]:
    """One CSV row (:data:`COLUMNS`) per check; a skipped neighbour's score is blank."""
    rows = []
    for check in checks:
        down, up = check.neighbours  # lr / f, lr · f
        rows.append({
            "strategy": check.label, "registered_strategy": check.strategy, "mem_size": check.mem_size,
            "lr": check.lr, "score": check.value,
            "lr_down": down.lr, "score_down": "" if down.value is None else down.value,
            "lr_up": up.lr, "score_up": "" if up.value is None else up.value,
            "gain": "" if check.gain is None else check.gain,
            "beyond_bound": "; ".join(_beyond(b, percent=False) for b in check.beyond),
            "beyond_gain": "" if check.beyond_gain is None else check.beyond_gain,
            "standard_error": check.standard_error,
            "verdict": check.verdict, "notes": _notes(check),
        })
    return rows


def optimum_markdown(checks: Sequence[OptimumCheck], factor: float) -> str:
    """The markdown table, accuracies in percent (two decimals: a validation split of a few
    hundred samples moves in steps of a few tenths)."""
    def pct(value: float | None) -> str:
        return "skipped" if value is None else f"{100 * value:.2f}"

    def gain(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:+.2f}"

    lines = [f"| strategy | memory | tuned lr | score % | lr / {factor:g} | lr · {factor:g} | best gain pp "
             "| past a bound % | its gain pp | SE pp | verdict | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for check in checks:
        down, up = check.neighbours
        verdict = check.verdict if check.verdict == OPTIMUM else f"**{check.verdict}**"
        past = "; ".join(_beyond(b, percent=True) for b in check.beyond) or "—"
        lines.append(f"| {check.label} | {check.mem_size} | {check.lr:.4g} | {pct(check.value)} "
                     f"| {pct(down.value)} ({down.lr:.3g}) | {pct(up.value)} ({up.lr:.3g}) | {gain(check.gain)} "
                     f"| {past} | {gain(check.beyond_gain)} "
                     f"| {100 * check.standard_error:.2f} | {verdict} | {_notes(check)} |")
    failed = [check for check in checks if check.verdict != OPTIMUM]
    bounded = sum(bool(check.beyond) for check in checks)
    summary = (f"{len(failed)} of {len(checks)} studies have a neighbouring learning rate or a value past a bound "
               "better beyond one standard error" if failed
               else f"all {len(checks)} studies are at their validation optimum")
    summary += (f"; {bounded} of them have a value at a bound of its space, re-scored past it" if bounded
                else "; none has a value at a bound of its space")
    header = ("# Tuned values against their neighbours\n\nValidation accuracy of the tuned values and of "
              f"lr / {factor:g} and lr · {factor:g} (the other tuned values unchanged), and of each value at a "
              "bound of its space moved past that bound, on the tune's validation split and seeds. *optimum*: "
              "no neighbour and no value past a bound better by more than one standard error (SE) of the tuned "
              "score.\n\n")
    return header + "\n".join(lines) + f"\n\n{summary}.\n"


def write_optimum(checks: Sequence[OptimumCheck], out: str | Path, factor: float) -> tuple[Path, Path]:
    """Write ``optimum.md`` and ``optimum.csv`` into ``out``; returns their paths."""
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(optimum_rows(checks))
    markdown = atomic_write_text(out / TABLE_FILES[0], optimum_markdown(checks, factor))
    return markdown, atomic_write_text(out / TABLE_FILES[1], buffer.getvalue())


__all__ = ["COLUMNS", "TABLE_FILES", "optimum_markdown", "optimum_rows", "refuse_finished", "write_optimum"]
