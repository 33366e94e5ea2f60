"""Differences of means over seeds with Welch's 95 % interval, and a verdict from the interval.

For two samples ``x_A`` (``n_A`` seeds) and ``x_B`` (``n_B`` seeds) with sample variances
``s_A^2``, ``s_B^2`` (``ddof=1``), the difference ``d = mean(x_A) - mean(x_B)`` has the interval

    d ± t_{1-α/2, ν} · sqrt(s_A^2/n_A + s_B^2/n_B),
    ν = (s_A^2/n_A + s_B^2/n_B)^2 / ((s_A^2/n_A)^2/(n_A-1) + (s_B^2/n_B)^2/(n_B-1))

(Welch–Satterthwaite degrees of freedom; no equal-variance assumption). Both variances 0 (e.g.
the zero-shot model against itself) gives the point ``[d, d]``. The Student-t quantile is computed
here (from the regularized incomplete beta function), so this needs no SciPy:

    P(T <= t) = 1 - I_{ν/(ν+t^2)}(ν/2, 1/2) / 2        for t >= 0.

A comparison "A above B" is **ahead** when the interval lies above 0, **behind** when it lies
below 0, and **within noise** otherwise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

AHEAD, BEHIND, NOISE = "ahead", "behind", "within noise"


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), for ``x < (a+1)/(a+b+2)``."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    value = d
    for m in range(1, 500):
        # the even step m(b-m)x / ((a+2m-1)(a+2m)), then the odd step -(a+m)(a+b+m)x / ((a+2m)(a+2m+1))
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            value *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return value


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete_beta: x must be in [0, 1], got {x!r}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t_cdf: degrees of freedom must be > 0, got {df!r}")
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (``0.5 <= p < 1``), by bisection on :func:`t_cdf`."""
    if not 0.5 <= p < 1.0:
        raise ValueError(f"t_quantile: p must be in [0.5, 1), got {p!r}")
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
        if high - low < 1e-12:
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its Welch interval; values in the samples' unit."""

    diff: float
    low: float
    high: float
    df: float  # Welch's ν; inf when both variances are 0
    std_a: float
    std_b: float

    @property
    def outcome(self) -> str:
        """:data:`AHEAD` (interval above 0), :data:`BEHIND` (below 0) or :data:`NOISE`."""
        if self.low > 0:
            return AHEAD
        if self.high < 0:
            return BEHIND
        return NOISE

    @property
    def within_two_std(self) -> bool:
        """``|d|`` below twice the larger of the two standard deviations."""
        return abs(self.diff) < 2 * max(self.std_a, self.std_b)


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """The difference of means of ``a`` and ``b`` with its Welch interval at ``level``.

    Raises:
        ValueError: a sample with fewer than 2 values (no variance to estimate).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch: each sample needs at least 2 values, got {len(a)} and {len(b)}")
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    std_a, std_b = statistics.stdev(a), statistics.stdev(b)
    var_a, var_b = std_a**2 / len(a), std_b**2 / len(b)
    diff = mean_a - mean_b
    if var_a + var_b == 0:
        return Difference(diff, diff, diff, math.inf, std_a, std_b)
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(var_a + var_b)
    return Difference(diff, diff - half, diff + half, df, std_a, std_b)
