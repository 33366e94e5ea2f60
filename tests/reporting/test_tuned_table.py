"""avalanche_clip.reporting.tuned_table: a hand-written tuned.yaml against the rows it must give."""

from __future__ import annotations

import pytest

from avalanche_clip.reporting.tuned_table import tuned_table

TUNED = """
strategies:
  gdro:
    by_mem_size:
      200:
        at_bound: []
        params: {lr: 0.0005564, tau: 2.823}
        standard_error: 0.0153
        value: 0.625
      0:
        at_bound:
        - {bound: low, param: dro_lambda, space: "float in [0.001, 1000], log", value: 0.0015}
        lr_search: {lr: 0.0003, start_lr: 0.0001, value: 0.49, stopped: neighbours lower}
        params: {dro_lambda: 0.0015, lr: 0.0003}
        standard_error: 0.0158
        value: 0.485
  ce:
    by_mem_size:
      20:
        lr_search: {lr: 1.47e-06, start_lr: 1.47e-06, stopped: neighbours lower}
        params: {lr: 1.47e-06}
        value: 0.436
"""


def test_rows_carry_values_errors_bounds_and_line_search(tmp_path):
    path = tmp_path / "tuned.yaml"
    path.write_text(TUNED, encoding="utf-8")
    lines = tuned_table(path).splitlines()
    assert lines[0] == "| method | tuned at memory | validation acc. (%) | tuned values | notes |"
    assert lines[2:] == [
        "| gdro | 0 | 48.5 ± 1.6 | dro_lambda 0.0015, lr 0.0003 | dro_lambda at the low bound of "
        "float in [0.001, 1000], log; lr 0.0001 → 0.0003 by the line search |",
        "| gdro | 200 | 62.5 ± 1.5 | lr 0.000556, tau 2.82 |  |",
        "| ce | 20 | 43.6 | lr 1.47e-06 |  |",  # no standard error recorded; the search kept the lr
        "",
        "Where each study's learning-rate line search stopped (2 of 3: neighbours lower; "
        "1 of 3: no line search recorded).",
    ]


def test_a_file_without_strategies_is_refused_by_name(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("seeds: [0, 1]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sweep\.yaml: no 'strategies' mapping; expected a tuned\.yaml"):
        tuned_table(path)


WALKED = """
strategies:
  co2l:
    by_mem_size:
      0:
        at_bound: []
        bound_walks:
        - {param: tau, bound: high, start_value: 4.38, value: 4.38, stopped: neighbour lower,
           scored: [{value: 8.15, score: 0.30}]}
        - {param: ird_lambda, bound: low, start_value: 0.0107, value: 0.00534, stopped: neighbour lower,
           scored: [{value: 0.00534, score: 0.37}, {value: 0.00268, score: 0.36}]}
        - {param: beta1, bound: low, start_value: 0.012, value: 0.012, stopped: domain limit,
           scored: [{value: -0.088, refused: "beta1 must lie in [0, 1)"}]}
        params: {lr: 0.00015, tau: 4.38, ird_lambda: 0.00534, beta1: 0.012}
        value: 0.368
"""


def test_each_bound_walk_is_a_note_what_it_moved_or_where_it_scored_no_better(tmp_path):
    path = tmp_path / "tuned.yaml"
    path.write_text(WALKED, encoding="utf-8")
    row = tuned_table(path).splitlines()[2]
    assert row.endswith("| tau scored past its high bound at 8.15: no better; ird_lambda 0.0107 → 0.00534 by the "
                        "bound walk; beta1: the strategy refuses values past its low bound (its limit) |")
