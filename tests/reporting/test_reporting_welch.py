"""Welch intervals and the Student-t quantile: against SciPy and against hand-computed values."""

from __future__ import annotations

import math

import pytest

from avalanche_clip.reporting.welch import (
    AHEAD,
    BEHIND,
    NOISE,
    incomplete_beta,
    t_cdf,
    t_quantile,
    welch,
)


def test_t_quantiles_of_the_table():
    # the 97.5 % quantiles every statistics table prints
    for df, expected in (
        (1, 12.706),
        (2, 4.303),
        (3, 3.182),
        (4, 2.776),
        (10, 2.228),
        (1000, 1.962),
    ):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_cdf(0.0, 3) == 0.5
    assert incomplete_beta(1.0, 1.0, 0.3) == pytest.approx(0.3)  # I_x(1, 1) = x


def test_against_scipy():
    stats = pytest.importorskip(
        "scipy.stats", reason="scipy (the test extra) checks the t quantile"
    )
    for df in (1.0, 2.0, 2.37, 3.5, 7.0, 40.0):
        assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
        assert t_cdf(-1.3, df) == pytest.approx(stats.t.cdf(-1.3, df), rel=1e-9)
    a, b = [0.50, 0.52, 0.55], [0.45, 0.47, 0.40]
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(0.95)
    got = welch(a, b)
    assert (got.low, got.high, got.df) == pytest.approx(
        (interval.low, interval.high, result.df), rel=1e-9
    )


def test_welch_by_hand():
    # a: mean 2, s^2 = 1; b: mean 0, s^2 = 1; n = 3 each -> se = sqrt(2/3), nu = 4
    got = welch([1.0, 2.0, 3.0], [-1.0, 0.0, 1.0])
    assert got.df == pytest.approx(4.0)
    half = 2.7764451051977934 * math.sqrt(2 / 3)
    assert (got.diff, got.low, got.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert got.outcome == NOISE  # 2 - 2.27 < 0
    assert not got.within_two_std  # |2| is not below 2 * 1
    assert welch([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]).within_two_std  # |1| < 2
    assert welch([5.0, 6.0, 7.0], [-1.0, 0.0, 1.0]).outcome == AHEAD
    assert welch([-1.0, 0.0, 1.0], [5.0, 6.0, 7.0]).outcome == BEHIND


def test_zero_variance_gives_the_point_and_one_seed_is_refused():
    got = welch([0.375, 0.375, 0.375], [0.375, 0.375, 0.375])
    assert (got.diff, got.low, got.high) == (0.0, 0.0, 0.0) and got.outcome == NOISE
    one_sided = welch([0.30, 0.32, 0.34], [0.375] * 3)  # against the zero-shot model: nu = n - 1
    assert one_sided.df == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 2 values, got 1 and 3"):
        welch([0.5], [0.1, 0.2, 0.3])
