"""Reports from result records: summary tables (Markdown, CSV) and the paper's figures.

Results are data first: every run writes ``results.jsonl`` records, and everything here is
derived from them, so a report can be rebuilt at any time::

    from avalanche_clip.reporting import write_report

    report = write_report("sweeps/cifar10")      # -> sweeps/cifar10/report/
    print(report["table"])

Or step by step::

    records = load_records("sweeps/cifar10")     # one row per (run, experience)
    summary = summary_table(records)             # mean/std over seeds per cell
    print(to_markdown(summary))
    figure = plot_final_vs_memory(summary, "split-cifar10")

Importing this package does not import matplotlib; the plotting functions do, when called.
"""

from avalanche_clip.reporting.plots import (
    memory_grid,
    memory_independent,
    plot_accuracy_per_experience,
    plot_final_vs_memory,
    sanitize,
    save_figure,
    write_figures,
)
from avalanche_clip.reporting.records import (
    NoRecordsError,
    RecordError,
    RecordWarning,
    TruncatedLineWarning,
    final_records,
    find_results_files,
    load_records,
    unfinished_runs,
)
from avalanche_clip.reporting.report import Report, write_report
from avalanche_clip.reporting.tables import (
    METHOD_ORDER,
    experience_table,
    format_percent,
    method_rank,
    sort_methods,
    summary_table,
    to_csv,
    to_markdown,
)

__all__ = [
    "METHOD_ORDER",
    "NoRecordsError",
    "RecordError",
    "RecordWarning",
    "Report",
    "TruncatedLineWarning",
    "experience_table",
    "final_records",
    "find_results_files",
    "format_percent",
    "load_records",
    "memory_grid",
    "memory_independent",
    "method_rank",
    "plot_accuracy_per_experience",
    "plot_final_vs_memory",
    "sanitize",
    "save_figure",
    "sort_methods",
    "summary_table",
    "to_csv",
    "to_markdown",
    "unfinished_runs",
    "write_figures",
    "write_report",
]
