"""Compare groups of repeated training runs: confidence intervals, probability of improvement, seeds needed.

A group is the final value of one metric (for example COCO mAP@0.5 in percent) from 4-20 runs of one configuration
that differ only in their seeds. The methods and what they assume, in plain words:

- Runs in a group are independent draws of the same random process. Paired groups have the same length and run i of
  A and run i of B share every seed, so the difference of a pair cancels the noise the two runs share.
- Every confidence interval is a bootstrap percentile interval, expanded for small groups (Hesterberg 2014, "What
  teachers should know about the bootstrap", arXiv:1411.5279; ``ExpandProbs`` in the R package resample). A plain
  percentile interval of a mean is about mean ± z·s·sqrt((n-1)/n)/sqrt(n) where the t interval is
  mean ± t·s/sqrt(n): with 4 normal runs it covers about 80% of the time instead of 95%. The percentile levels are
  moved outwards so that for symmetric data the interval matches the t interval; the bootstrap still supplies the
  shape (skew). One group and paired differences use n - 1 degrees of freedom; the difference of two independent
  groups uses Welch's degrees of freedom; the probability of improvement uses the smaller group, as resample does.
  A bootstrap mean cannot leave the observed range, so with 3-4 runs even the expanded interval is too narrow
  (about 88% coverage with 4 normal runs; about 95% from 10 runs on).
- The interval of a standard deviation stays rough for small groups (a std from 5 runs is itself very noisy, and
  its bootstrap distribution is skewed low); it is undefined (None) for a single run.
- Probability of improvement is P(B run > A run) + 0.5·P(tie) over all pairs of runs: the Mann-Whitney / rliable
  definition, free of any assumption about the shape of the noise.
- Seeds needed is the textbook sample size of a two-sided t test with equal groups: the normal approximation,
  then the smallest n that also satisfies the formula with Student-t quantiles (scipy.stats.t). It assumes roughly normal run-to-run noise whose true spread is the measured one (with few runs that
  spread is itself uncertain), and matches R's exact power.t.test on the usual cases (std 1, delta 1: 17 runs
  unpaired, 10 paired); near a boundary it may differ by one run.
- Every bootstrap draws from ``np.random.default_rng(seed)``: the same inputs and seed give the same numbers, and the
  global numpy random state is never touched.
"""
from __future__ import annotations

import math
from numbers import Real
from statistics import NormalDist

import numpy as np


IDENTICAL_SOURCE = "identical"  # variance_by_source: runs repeated with identical seeds (the noise floor)
REPORT_POWER = 0.8  # compare_groups: the power its seeds_needed and verdict use
REPORT_SEED = 0  # bootstrap seed of the reports: the same runs always give the same report
REPORT_RESAMPLES = 10000  # bootstrap resamples of the reports

_NORMAL = NormalDist()


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution: the t with P(T <= t) = p, for 0 < p < 1 and df > 0 (may be fractional,
    e.g. Welch's degrees of freedom). scipy returns NaN outside that range; this raises ValueError."""
    _check_unit_interval(p, "p")
    if not (isinstance(df, Real) and math.isfinite(df) and df > 0):
        raise ValueError(f"degrees of freedom must be a positive finite number, got {df!r}")
    # imported here: scipy.stats takes about a second to import, which a CLI stopping on a user error never needs
    from scipy.stats import t
    return float(t.ppf(p, df))


def _values(values, name: str) -> np.ndarray:
    """``values`` as a 1-D float array; empty, multi-dimensional or non-finite input raises ValueError."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: values must be finite, got {array.tolist()}")
    return array


def _check_unit_interval(value, name: str) -> None:
    if not (isinstance(value, Real) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")


def _check_bootstrap(confidence, n_resamples, seed) -> None:
    _check_unit_interval(confidence, "confidence")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    # None would let numpy seed from the OS and the report would no longer be reproducible
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_delta(delta) -> None:
    if not (isinstance(delta, Real) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive finite number, got {delta!r}")


def _expanded_alpha(alpha: float, df: float | None, inflation: float) -> float:
    """Two-sided level whose normal quantile, shrunk by ``inflation``, equals the t quantile at ``alpha``.

    ``inflation`` is sqrt(unbiased variance / plug-in variance) of the estimate: how much the bootstrap, which
    resamples with divisor n, understates the spread. Without degrees of freedom (a single run, zero spread)
    there is nothing to expand and the nominal level is kept.
    """
    if df is None:
        return alpha
    return 2.0 * _NORMAL.cdf(-inflation * t_quantile(1.0 - alpha / 2.0, df))


def _percentile_interval(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _deviations(values: np.ndarray) -> np.ndarray:
    """``values`` minus its first entry.

    Means and stds are taken of these, plus the first entry back for means: identical runs then give exactly their
    value and exactly 0, where a plain mean of nine copies of 31.7 is off by an ulp and their std is 4e-15.
    """
    return values - values[0]


def _mean(values: np.ndarray) -> float:
    return float(values[0] + _deviations(values).mean())


def _std(values: np.ndarray) -> float:
    """Sample std (ddof=1); 0.0 for a single run."""
    return float(_deviations(values).std(ddof=1)) if values.size > 1 else 0.0


def _resample(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Deviations (see ``_deviations``) of ``n_resamples`` bootstrap samples of ``values``: (n_resamples, n)."""
    return _deviations(values)[rng.integers(0, values.size, size=(n_resamples, values.size))]


def _resample_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap samples of ``values``: shape (n_resamples,)."""
    return values[0] + _resample(values, n_resamples, rng).mean(axis=1)


def _one_sample_expansion(n: int) -> tuple[float | None, float]:
    """(degrees of freedom, inflation) of the expanded interval for a statistic of one sample of size ``n``."""
    return (n - 1, math.sqrt(n / (n - 1))) if n >= 2 else (None, 1.0)


def bootstrap_ci(values, stat: str = "mean", confidence: float = 0.95, n_resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float] | tuple[None, None]:
    """Expanded percentile bootstrap interval of the mean or of the sample std (ddof=1) of one group.

    values: 1-D, one number per run. stat: "mean" or "std". Returns (low, high) in the units of ``values``.
    A single run gives (value, value) for the mean, whose bootstrap distribution is that one value, and
    (None, None) for the std, which one run does not define. Identical runs give a collapsed interval. A bootstrap
    mean never leaves the observed range, so with 3-4 runs the interval is at most [min, max].
    """
    values = _values(values, "values")
    _check_bootstrap(confidence, n_resamples, seed)
    if stat not in ("mean", "std"):
        raise ValueError(f"stat must be 'mean' or 'std', got {stat!r}")
    if values.size == 1:
        return (float(values[0]), float(values[0])) if stat == "mean" else (None, None)
    rng = np.random.default_rng(seed)
    if stat == "mean":
        stats = _resample_means(values, n_resamples, rng)
    else:
        stats = _resample(values, n_resamples, rng).std(axis=1, ddof=1)
    return _percentile_interval(stats, _expanded_alpha(1.0 - confidence, *_one_sample_expansion(values.size)))


def _welch_expansion(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float | None, float]:
    """(Welch degrees of freedom, inflation) for the difference of two independent means; (None, 1) at zero spread."""
    groups = (_deviations(baseline), _deviations(candidate))
    unbiased = [g.var(ddof=1) / g.size for g in groups]
    plug_in = [g.var(ddof=0) / g.size for g in groups]
    if sum(plug_in) == 0.0:
        return None, 1.0
    df = sum(unbiased) ** 2 / sum(v * v / (g.size - 1) for v, g in zip(unbiased, groups, strict=True))
    return df, math.sqrt(sum(unbiased) / sum(plug_in))


def mean_difference(baseline, candidate, paired: bool, confidence: float = 0.95, n_resamples: int = 10000,
                    seed: int = 0) -> dict:
    """mean(candidate) - mean(baseline) with an expanded percentile bootstrap interval.

    baseline, candidate: 1-D, one number per run, at least 2 each; with ``paired`` the same length, entry i of both
    from the same seed. Paired resamples whole pairs and averages their differences; unpaired resamples each group on
    its own. Returns difference, ci_low, ci_high (units of the inputs), paired, n_baseline, n_candidate, method.
    When every resample gives the same number (identical runs) the interval collapses onto the difference.
    """
    baseline, candidate = _values(baseline, "baseline"), _values(candidate, "candidate")
    _check_bootstrap(confidence, n_resamples, seed)
    if min(baseline.size, candidate.size) < 2:
        raise ValueError(f"a difference needs at least 2 runs per group to measure the spread, got "
                         f"{baseline.size} and {candidate.size}")
    if paired and baseline.size != candidate.size:
        raise ValueError(f"paired groups must have the same length, got {baseline.size} and {candidate.size}")
    rng = np.random.default_rng(seed)
    if paired:
        differences = candidate - baseline
        # equal to mean(candidate) - mean(baseline) but rounded like the resampled means, so a collapsed interval
        # equals it exactly
        difference = _mean(differences)
        stats = _resample_means(differences, n_resamples, rng)
        df, inflation = _one_sample_expansion(differences.size)
        method = "paired bootstrap of per-seed differences"
    else:
        difference = _mean(candidate) - _mean(baseline)
        stats = _resample_means(candidate, n_resamples, rng) - _resample_means(baseline, n_resamples, rng)
        df, inflation = _welch_expansion(baseline, candidate)
        method = "independent bootstrap of each group"
    low, high = _percentile_interval(stats, _expanded_alpha(1.0 - confidence, df, inflation))
    return {"difference": float(difference), "ci_low": low, "ci_high": high, "paired": bool(paired),
            "n_baseline": int(baseline.size), "n_candidate": int(candidate.size), "method": method}


def _pair_scores(baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Score of every (candidate run, baseline run) pair: 1 if the candidate is higher, 0.5 on a tie, else 0.

    Shape (len(candidate), len(baseline)).
    """
    return (candidate[:, None] > baseline[None, :]) + 0.5 * (candidate[:, None] == baseline[None, :])


def probability_of_improvement(baseline, candidate) -> float:
    """P(a candidate run beats a baseline run) + 0.5·P(tie), over all pairs of runs; 0.5 means no tendency either way.

    baseline, candidate: 1-D, one number per run; the groups need not be paired nor of equal length.
    """
    return float(_pair_scores(_values(baseline, "baseline"), _values(candidate, "candidate")).mean())


def _resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` items is drawn in each bootstrap sample: shape (n_resamples, n), rows sum to n."""
    draws = rng.integers(0, n, size=(n_resamples, n)) + n * np.arange(n_resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def probability_of_improvement_ci(baseline, candidate, confidence: float = 0.95, n_resamples: int = 2000,
                                  seed: int = 0) -> tuple[float, float]:
    """Expanded percentile bootstrap interval of ``probability_of_improvement``, both groups resampled on their own.

    Returns (low, high) within [0, 1].
    """
    baseline, candidate = _values(baseline, "baseline"), _values(candidate, "candidate")
    _check_bootstrap(confidence, n_resamples, seed)
    rng = np.random.default_rng(seed)
    # a resample only reweights the fixed pair scores, so weight them by draw counts instead of rebuilding them
    baseline_counts = _resample_counts(baseline.size, n_resamples, rng)
    candidate_counts = _resample_counts(candidate.size, n_resamples, rng)
    scores = _pair_scores(baseline, candidate)
    stats = ((candidate_counts @ scores) * baseline_counts).sum(axis=1) / (candidate.size * baseline.size)
    expansion = _one_sample_expansion(min(baseline.size, candidate.size))
    return _percentile_interval(stats, _expanded_alpha(1.0 - confidence, *expansion))


def _check_std(std, name: str) -> None:
    if not (isinstance(std, Real) and math.isfinite(std) and std >= 0):
        raise ValueError(f"{name} must be a non-negative finite number or None, got {std!r}")


def _runs_for(ratio: float, alpha: float, power: float, df: float | None) -> float:
    """(q_{1-alpha/2} + q_{power})^2 · ratio with normal quantiles (df None) or Student-t quantiles."""
    if df is None:
        quantile_sum = _NORMAL.inv_cdf(1.0 - alpha / 2.0) + _NORMAL.inv_cdf(power)
    else:
        quantile_sum = t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)
    # a power below alpha/2 makes the sum negative, and squaring it would then overstate n
    return max(quantile_sum, 0.0) ** 2 * ratio


def seeds_needed(std_baseline: float | None, std_candidate: float | None, delta: float = 1.0, power: float = 0.8,
                 alpha: float = 0.05, paired: bool = False, std_difference: float | None = None) -> int | None:
    """Runs per group for a two-sided test at level ``alpha`` to detect a true difference ``delta`` with ``power``.

    std_baseline, std_candidate: run-to-run std of each group (unpaired); std_difference: std of the per-pair
    differences (paired; the group stds are then unused). All in the units of ``delta``. Returns the smallest
    n >= 2 with n >= (t_{1-alpha/2} + t_{power})^2 · var / delta^2, t with 2n - 2 (unpaired) or n - 1 (paired)
    degrees of freedom, starting from the normal approximation. Zero spread returns 2: any difference shows with
    two runs. None when a std it needs is None (not measured).
    """
    _check_delta(delta)
    _check_unit_interval(power, "power")
    _check_unit_interval(alpha, "alpha")
    stds = {"std_difference": std_difference} if paired else {"std_baseline": std_baseline,
                                                               "std_candidate": std_candidate}
    if any(std is None for std in stds.values()):
        return None
    for name, std in stds.items():
        _check_std(std, name)
    ratio = sum(std * std for std in stds.values()) / delta ** 2
    if ratio == 0.0:
        return 2
    n = max(2, math.ceil(_runs_for(ratio, alpha, power, None)))
    # t quantiles shrink as n grows, so the first n that satisfies the t formula is the smallest one
    while _runs_for(ratio, alpha, power, n - 1 if paired else 2 * n - 2) > n:
        n += 1
    return n


def summarize_group(values, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> dict:
    """One group of runs: n, mean, std (ddof=1; 0.0 for a single run), min, max, and the bootstrap intervals of the
    mean (mean_ci_low, mean_ci_high) and of the std (std_ci_low, std_ci_high; None for a single run).

    values: 1-D, one number per run; everything is in its units.
    """
    values = _values(values, "values")
    mean_low, mean_high = bootstrap_ci(values, "mean", confidence, n_resamples, seed)
    std_low, std_high = bootstrap_ci(values, "std", confidence, n_resamples, seed)
    return {"n": int(values.size), "mean": _mean(values), "std": _std(values),
            "min": float(values.min()), "max": float(values.max()), "confidence": float(confidence),
            "mean_ci_low": mean_low, "mean_ci_high": mean_high, "std_ci_low": std_low, "std_ci_high": std_high}


def _verdict(summary_a: dict, summary_b: dict, difference: dict, needed: int, delta: float, power: float) -> str:
    """The one-sentence reading of a comparison, B (candidate) against A (baseline)."""
    if summary_a["std"] == summary_b["std"] == 0.0 and summary_a["mean"] == summary_b["mean"]:
        return "A and B are identical in every run (zero spread): no difference."
    d, low, high = difference["difference"], difference["ci_low"], difference["ci_high"]
    interval = f"{summary_a['confidence'] * 100:g}% CI {low:.2f} to {high:.2f}"
    if low > 0 or high < 0:
        direction = "better" if low > 0 else "worse"
        return f"B is {direction} than A by {abs(d):.2f} ± {(high - low) / 2:.2f} points ({interval})."
    return (f"The difference ({d:+.2f} points, {interval}) is within the noise: with this spread you need {needed} "
            f"seeds per group to detect a {delta:g}-point difference at {power * 100:g}% power.")


def compare_groups(baseline, candidate, paired: bool, delta: float = 1.0, confidence: float = 0.95,
                   n_resamples: int = 10000, seed: int = 0) -> dict:
    """Everything a report needs for one metric, B (candidate) against A (baseline).

    baseline, candidate: 1-D, one number per run (at least 2 each; same length when ``paired``). delta: the
    difference worth detecting, in the units of the values. Returns baseline and candidate (summarize_group),
    difference (mean_difference), probability_of_improvement with probability_of_improvement_ci_low/_high,
    std_difference (std of the per-pair differences; None unpaired), delta, power, seeds_needed (for ``delta`` at
    that power and level 1 - confidence, from the measured spread) and verdict (one sentence). Each part equals its
    own function called with the same seed.
    """
    power = REPORT_POWER
    _check_delta(delta)
    difference = mean_difference(baseline, candidate, paired, confidence, n_resamples, seed)
    summary_a = summarize_group(baseline, confidence, n_resamples, seed)
    summary_b = summarize_group(candidate, confidence, n_resamples, seed)
    poi_low, poi_high = probability_of_improvement_ci(baseline, candidate, confidence, n_resamples, seed)
    std_difference = _std(_values(candidate, "candidate") - _values(baseline, "baseline")) if paired else None
    needed = seeds_needed(summary_a["std"], summary_b["std"], delta, power, 1.0 - confidence, paired, std_difference)
    return {"baseline": summary_a, "candidate": summary_b, "difference": difference,
            "probability_of_improvement": probability_of_improvement(baseline, candidate),
            "probability_of_improvement_ci_low": poi_low, "probability_of_improvement_ci_high": poi_high,
            "std_difference": std_difference, "delta": float(delta), "power": power, "seeds_needed": needed,
            "verdict": _verdict(summary_a, summary_b, difference, needed, delta, power)}


def variance_by_source(groups: dict[str, list[float]], confidence: float = 0.95, n_resamples: int = 10000,
                       seed: int = 0) -> dict[str, dict]:
    """Run-to-run spread of each source of randomness, and its share of the total.

    groups: source name -> the metric of runs in which only that source varies (for example "init", "order",
    "aug"; IDENTICAL_SOURCE for runs repeated with identical seeds, the noise floor). Returns, per source in sorted
    order, summarize_group of its runs (seed + its index in sorted order, so dict order does not matter) plus share:
    its variance over the summed variance of every source but IDENTICAL_SOURCE (None when that sum is 0). The
    shares assume the sources add independent noise; the identical runs' share says how much of it is left when
    no seed changes.
    """
    if not groups:
        raise ValueError("variance_by_source needs at least one source")
    _check_bootstrap(confidence, n_resamples, seed)
    summaries = {name: summarize_group(_values(values, f"source {name!r}"), confidence, n_resamples, seed + index)
                 for index, (name, values) in enumerate(sorted(groups.items()))}
    total = sum(s["std"] ** 2 for name, s in summaries.items() if name != IDENTICAL_SOURCE)
    return {name: {**s, "share": s["std"] ** 2 / total if total > 0 else None} for name, s in summaries.items()}
