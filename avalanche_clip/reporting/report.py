"""The report of a sweep: the summary table (Markdown, CSV), the figures, and ``report.md``.

Everything is derived from the records alone, so a report can be rebuilt at any time, also
while a sweep still runs: unfinished runs are left out and counted. Each file is written
atomically, figures first and ``report.md`` last, so a reader never sees half a file and every
figure ``report.md`` links exists. The output carries no timestamps or absolute paths: the same
records give byte-identical files, which keeps committed reports diffable.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TypedDict

import pandas as pd

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.reporting.plots import write_figures
from avalanche_clip.reporting.protocol import StrategyRoles, protocol_checks
from avalanche_clip.reporting.records import (
    TruncatedLineWarning,
    final_records,
    load_records,
    unfinished_runs,
)
from avalanche_clip.reporting.retention import NOTE as RETENTION_NOTE
from avalanche_clip.reporting.retention import (
    retention_markdown,
    retention_table,
    write_retention_figures,
)
from avalanche_clip.reporting.tables import (
    experience_table,
    summary_table,
    to_csv,
    to_markdown,
)

REPORT_DIRNAME = "report"
FIGURES_DIRNAME = "figures"
_LISTED_UNFINISHED = 10  # run ids named in report.md; the rest are only counted

NOTES = (
    "Accuracies in percent, mean ± std over seeds (sample std; a single seed shows the mean "
    "only; — = not available). *Final acc.*: accuracy on the whole test stream after the last "
    "experience. *Avg. acc.*: average incremental accuracy, the mean over experiences t of the "
    "accuracy on the test data of experiences 0..t after training experience t. *Forgetting* "
    "and *BWT* are measured against the untrained model: on each experience's test data, over the "
    "same seen classes, a run's accuracy minus that of the zero-shot run of the same seed (its "
    "gain). *Forgetting*: the mean over earlier experiences j of (best earlier gain on j − final "
    "gain on j), so a model that never trains has 0. *BWT*: backward transfer, the mean over "
    "earlier experiences j of (final gain on j − gain on j right after training j); negative "
    "values are forgetting. Both are — without a zero-shot run of the same seed in the sweep. "
    "Avalanche's forgetting and BWT (the same over raw accuracies, as each run records them) are "
    "in summary.csv (`avalanche_forgetting_*`, `avalanche_bwt_*`). *Plasticity*: the mean "
    "accuracy on each experience right after training it. *Zero-shot*: the pretrained model on the full test set before any "
    "training (the floor). *Seeds*: the number of seeds each cell averages."
)


class Report(TypedDict):
    """What :func:`write_report` wrote and found."""

    out_dir: Path
    summary_md: Path
    summary_csv: Path
    report_md: Path
    figures: list[Path]
    table: str  # the Markdown summary table, for a CLI to print
    n_runs: int  # finished runs used
    n_records: int  # records of those runs
    unfinished: list[str]  # run ids skipped because they have no final record
    skipped_lines: list[str]  # truncated lines skipped while reading, as warned


def _usage_line(report: Report, sweep: str) -> str:
    line = (
        f"Built from {report['n_records']} records of {report['n_runs']} finished runs "
        f"in `{sweep}`; {len(report['unfinished'])} unfinished run(s) skipped"
    )
    if report["unfinished"]:
        named = ", ".join(f"`{r}`" for r in report["unfinished"][:_LISTED_UNFINISHED])
        more = len(report["unfinished"]) - _LISTED_UNFINISHED
        line += f" ({named}{f', and {more} more' if more > 0 else ''})"
    line += "."
    if report["skipped_lines"]:
        line += f" {len(report['skipped_lines'])} truncated record line(s) skipped."
    return line


def _figure_section(figures: list[Path], out_dir: Path) -> list[str]:
    lines = ["## Figures", ""]
    for png in (p for p in figures if p.suffix == ".png"):
        rel = png.relative_to(out_dir).as_posix()
        svg = png.with_suffix(".svg").relative_to(out_dir).as_posix()
        title = png.stem.replace("__", " · ").replace("_", " ")
        lines += [f"### {title}", "", f"![{title}]({rel})", "", f"[PNG]({rel}) · [SVG]({svg})", ""]
    return lines


def _retention_section(table: pd.DataFrame) -> list[str]:
    """report.md's retention table (:mod:`avalanche_clip.reporting.retention`), when there is one."""
    if table.empty:
        return []
    return ["## Retention on held-out sets", "", RETENTION_NOTE, "", retention_markdown(table)]


def write_report(
    sweep_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *,
    roles: StrategyRoles,
) -> Report:
    """Read the records under ``sweep_dir`` and write the report into ``out_dir``; ``roles``
    (:func:`avalanche_clip.strategies.strategy_roles`) says which methods train and which are joint
    bounds, for the protocol checks.

    ``out_dir`` defaults to ``<sweep_dir>/report/`` (beside the file when ``sweep_dir`` is a
    single ``results.jsonl``). Writes ``summary.md``, ``summary.csv``, ``figures/*.png|svg``
    and ``report.md``; returns their paths, the Markdown table and the counts.

    Raises what :func:`~avalanche_clip.reporting.load_records` raises (e.g. ``NoRecordsError``
    for a directory without records).
    """
    sweep = Path(sweep_dir)
    out = (
        Path(out_dir)
        if out_dir is not None
        else (sweep if sweep.is_dir() else sweep.parent) / REPORT_DIRNAME
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_records(sweep)
        summary = summary_table(records)
        curves = experience_table(records)
    for warning in caught:  # pass them on to the caller, and count them for report.md
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    finals = final_records(records)
    table = to_markdown(summary)
    figures = write_figures(summary, curves, out / FIGURES_DIRNAME) if not summary.empty else []
    retention = retention_table(records)  # empty unless the runs scored held-out sets
    figures += write_retention_figures(retention, out / FIGURES_DIRNAME)
    report = Report(
        out_dir=out,
        summary_md=atomic_write_text(out / "summary.md", table),
        summary_csv=atomic_write_text(out / "summary.csv", to_csv(summary)),
        report_md=out / "report.md",
        figures=figures,
        table=table,
        n_runs=len(finals),
        n_records=int(records["run_id"].isin(finals["run_id"]).sum()),
        unfinished=unfinished_runs(records),
        skipped_lines=[
            str(w.message) for w in caught if issubclass(w.category, TruncatedLineWarning)
        ],
    )
    sweep_label = Path(os.path.relpath(sweep, out)).as_posix()
    text = "\n".join(
        [
            f"# Report: {sweep.resolve().name}",
            "",
            _usage_line(report, sweep_label),
            "",
            NOTES,
            "",
            table,
            "## Protocol",
            "",
            *protocol_checks(records[records["run_id"].isin(finals["run_id"])], roles),
            "",
            *_retention_section(retention),
            "Data: [summary.csv](summary.csv) · [summary.md](summary.md)",
            "",
            *_figure_section(figures, out),
        ]
    )
    atomic_write_text(report["report_md"], text.rstrip("\n") + "\n")
    return report
