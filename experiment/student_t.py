"""Student's t distribution without scipy: the upper tail through the regularized incomplete beta function, and
the quantile by bisection on it. Used by experiment.statistics for expanded bootstrap intervals and seeds needed."""
from __future__ import annotations

import math
from numbers import Real

_CF_EPS = 1e-15
_CF_TINY = 1e-300
_CF_MAX_ITER = 100_000  # the continued fraction needs about sqrt(df) terms near the centre


def _continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    result = d
    for m in range(1, _CF_MAX_ITER):
        # each step applies the even then the odd term of the fraction
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            result *= c * d
        if abs(c * d - 1.0) < _CF_EPS:
            return result
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # the fraction converges fast only below the mode; above it, use I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0 and Student's t with ``df`` degrees of freedom."""
    return 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution: the t with P(T <= t) = p, for 0 < p < 1 and df > 0 (may be fractional).

    Found by bisection on the upper tail, which keeps full relative precision for p close to 0 or 1. Accurate to
    about 1e-9 up to df = 10^6; beyond that lgamma loses digits (10^9 is still good to 2e-7).
    """
    if not (isinstance(p, Real) and 0.0 < p < 1.0):
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if not (isinstance(df, Real) and math.isfinite(df) and df > 0):
        raise ValueError(f"degrees of freedom must be a positive finite number, got {df!r}")
    tail = min(p, 1.0 - p)
    if tail == 0.5:
        return 0.0
    low, high = 0.0, 1.0
    while _t_upper_tail(high, df) > tail:
        low, high = high, 2.0 * high
    while high - low > 1e-13 * high:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if _t_upper_tail(middle, df) > tail else (low, middle)
    t = 0.5 * (low + high)
    return t if p > 0.5 else -t
