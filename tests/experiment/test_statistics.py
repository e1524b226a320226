"""experiment.statistics against known answers: t tables, Student's sleep data, R's power.t.test, interval
coverage."""
from __future__ import annotations

import json
import math
import re
from statistics import NormalDist

import numpy as np
import pytest

from experiment.statistics import (
    IDENTICAL_SOURCE,
    bootstrap_ci,
    compare_groups,
    mean_difference,
    probability_of_improvement,
    probability_of_improvement_ci,
    seeds_needed,
    summarize_group,
    t_quantile,
    variance_by_source,
)

# Student (1908): extra hours of sleep of the same 10 patients under two drugs; paired by patient
SLEEP_A = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_B = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
PAIRED_T_INTERVAL = (0.70, 2.46)  # t.test(B, A, paired=TRUE)
WELCH_T_INTERVAL = (-0.20, 3.36)  # t.test(B, A)

NUMBER = r"-?\d+\.\d\d"
BETTER_OR_WORSE = re.compile(rf"B is (better|worse) than A by \d+\.\d\d ± \d+\.\d\d points \(95% CI ({NUMBER}) to "
                             rf"({NUMBER})\)\.")
WITHIN_NOISE = re.compile(rf"The difference \([+-]\d+\.\d\d points, 95% CI ({NUMBER}) to ({NUMBER})\) is within the "
                          r"noise: with this spread you need (\d+) seeds per group to detect a 1-point difference at "
                          r"80% power\.")


@pytest.mark.parametrize("p, df, expected", [(0.975, 1, 12.706), (0.975, 10, 2.228), (0.975, 30, 2.042),
                                             (0.8, 5, 0.920), (0.995, 2, 9.925), (0.9, 20, 1.325)])
def test_t_quantile_matches_table(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=6e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=6e-4)


@pytest.mark.parametrize("p", [0.001, 0.1, 0.3, 0.5, 0.7, 0.95, 0.9999])
def test_t_quantile_matches_closed_forms(p):
    # df 1 is the Cauchy distribution, df 2 has a closed-form quantile, a huge df is the normal distribution
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9, abs=1e-12)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9, abs=1e-12)
    assert t_quantile(p, 1e6) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-5, abs=1e-12)


def _coverage(paired: bool, repetitions: int = 200, n: int = 15) -> tuple[float, float]:
    """Share of 95% intervals containing the true shift 1.0, and their mean width."""
    rng = np.random.default_rng(20240601)
    hits, widths = 0, []
    for repetition in range(repetitions):
        if paired:
            # run i of both groups shares most of its noise (the same seed), as paired training runs do
            shared = rng.normal(0.0, 0.9, n)
            baseline, candidate = shared + rng.normal(0.0, 0.44, n), shared + 1.0 + rng.normal(0.0, 0.44, n)
        else:
            baseline, candidate = rng.normal(0.0, 1.0, n), rng.normal(1.0, 1.0, n)
        result = mean_difference(baseline, candidate, paired, n_resamples=1000, seed=repetition)
        hits += result["ci_low"] <= 1.0 <= result["ci_high"]
        widths.append(result["ci_high"] - result["ci_low"])
    return hits / repetitions, float(np.mean(widths))


def test_unpaired_interval_covers_the_true_shift():
    coverage, _ = _coverage(paired=False)
    assert 0.88 <= coverage <= 0.99


def test_paired_interval_covers_the_true_shift_and_is_narrower_for_correlated_pairs():
    coverage, paired_width = _coverage(paired=True)
    _, unpaired_width = _coverage(paired=False)
    assert 0.88 <= coverage <= 0.99
    assert paired_width < 0.75 * unpaired_width


def test_sleep_data_paired_interval_excludes_zero_like_the_paired_t_interval():
    result = mean_difference(SLEEP_A, SLEEP_B, paired=True)
    assert result["difference"] == pytest.approx(1.58)
    assert result["ci_low"] > 0
    assert result["ci_low"] == pytest.approx(PAIRED_T_INTERVAL[0], abs=0.25)
    assert result["ci_high"] == pytest.approx(PAIRED_T_INTERVAL[1], abs=0.25)
    assert (result["paired"], result["n_baseline"], result["n_candidate"]) == (True, 10, 10)
    assert result["method"] == "paired bootstrap of per-seed differences"


def test_sleep_data_unpaired_interval_includes_zero_like_welch():
    result = mean_difference(SLEEP_A, SLEEP_B, paired=False)
    assert result["difference"] == pytest.approx(1.58)
    assert result["ci_low"] < 0 < result["ci_high"]
    assert result["ci_low"] == pytest.approx(WELCH_T_INTERVAL[0], abs=0.25)
    assert result["ci_high"] == pytest.approx(WELCH_T_INTERVAL[1], abs=0.25)
    assert result["method"] == "independent bootstrap of each group"


def test_bootstrap_ci_of_one_group():
    rng = np.random.default_rng(7)
    values = rng.normal(40.0, 2.0, 12)
    mean_low, mean_high = bootstrap_ci(values, "mean", n_resamples=4000)
    half_t = t_quantile(0.975, 11) * values.std(ddof=1) / math.sqrt(12)
    assert mean_low == pytest.approx(values.mean() - half_t, abs=0.3 * half_t)
    assert mean_high == pytest.approx(values.mean() + half_t, abs=0.3 * half_t)
    std_low, std_high = bootstrap_ci(values, "std", n_resamples=4000)
    assert 0 < std_low < values.std(ddof=1) < std_high
    assert bootstrap_ci([42.5], "mean") == (42.5, 42.5)
    assert bootstrap_ci([42.5], "std") == (None, None)


@pytest.mark.parametrize("baseline, candidate, expected", [
    ([1, 2], [3, 4], 1.0),
    ([3, 4], [1, 2], 0.0),
    ([5, 1, 3], [5, 1, 3], 0.5),
    # candidate 2 beats 1; 3 beats 1 and ties 3; 6 beats all three: (1 + 1.5 + 3) / 9
    ([1, 3, 5], [2, 3, 6], 5.5 / 9),
])
def test_probability_of_improvement_counts_pairs(baseline, candidate, expected):
    assert probability_of_improvement(baseline, candidate) == pytest.approx(expected)


def test_probability_of_improvement_interval():
    assert probability_of_improvement_ci([1, 2, 1.5], [3, 4, 3.5]) == (1.0, 1.0)
    low, high = probability_of_improvement_ci(SLEEP_A, SLEEP_B, n_resamples=2000)
    assert 0.0 <= low < probability_of_improvement(SLEEP_A, SLEEP_B) < high <= 1.0


def test_seeds_needed_matches_power_t_test():
    z = NormalDist().inv_cdf
    assert math.ceil((z(0.975) + z(0.8)) ** 2 * 2) == 16  # the normal approximation the t correction starts from
    # R: power.t.test(delta=1, sd=1, power=0.8) gives n = 16.71; delta 0.5: 63.77; delta 2: 5.09; paired: 9.94
    assert seeds_needed(1.0, 1.0) == 17
    assert seeds_needed(1.0, 1.0, delta=0.5) == 64
    assert seeds_needed(1.0, 1.0, delta=2.0) == 6
    assert seeds_needed(None, None, paired=True, std_difference=1.0) == 10


def test_seeds_needed_follows_spread_delta_power_and_pairing():
    assert seeds_needed(0.5, 0.5) < seeds_needed(1.0, 1.0) < seeds_needed(2.0, 2.0)
    assert seeds_needed(1.0, 1.0, delta=0.5) > seeds_needed(1.0, 1.0, delta=1.0) > seeds_needed(1.0, 1.0, delta=3.0)
    assert seeds_needed(1.0, 1.0, power=0.9) > seeds_needed(1.0, 1.0)
    assert seeds_needed(1.0, 1.0, alpha=0.01) > seeds_needed(1.0, 1.0)
    # paired uses only the std of the differences, however noisy the groups are
    assert seeds_needed(5.0, 5.0, paired=True, std_difference=1.0) == 10
    assert seeds_needed(5.0, 5.0, paired=True, std_difference=0.2) == 3  # t with 1 degree of freedom is 12.7
    assert seeds_needed(5.0, 5.0, paired=True, std_difference=0.05) == 2
    assert seeds_needed(0.0, 0.0) == 2
    assert seeds_needed(None, 1.0) is None
    assert seeds_needed(1.0, 1.0, paired=True) is None


def test_summarize_group():
    summary = summarize_group([1.0, 2.0, 3.0, 4.0], n_resamples=1000)
    assert {k: summary[k] for k in ("n", "mean", "min", "max")} == {"n": 4, "mean": 2.5, "min": 1.0, "max": 4.0}
    assert summary["std"] == pytest.approx(math.sqrt(5 / 3))
    assert 1.0 <= summary["mean_ci_low"] < 2.5 < summary["mean_ci_high"] <= 4.0
    single = summarize_group([7.0])
    assert (single["std"], single["mean_ci_low"], single["mean_ci_high"]) == (0.0, 7.0, 7.0)
    assert single["std_ci_low"] is None and single["std_ci_high"] is None
    json.dumps(summary), json.dumps(single)


def test_same_seed_same_report_and_different_seed_different_bounds():
    first = compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=2000, seed=3)
    assert compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=2000, seed=3) == first
    assert json.loads(json.dumps(first)) == first
    other = compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=2000, seed=4)
    assert (other["difference"]["ci_low"], other["difference"]["ci_high"]) != (first["difference"]["ci_low"],
                                                                             first["difference"]["ci_high"])
    assert other["difference"]["difference"] == first["difference"]["difference"]


def test_compare_groups_parts_equal_their_own_functions():
    report = compare_groups(SLEEP_A, SLEEP_B, paired=False, n_resamples=1000, seed=5)
    assert report["difference"] == mean_difference(SLEEP_A, SLEEP_B, False, n_resamples=1000, seed=5)
    assert report["baseline"] == summarize_group(SLEEP_A, n_resamples=1000, seed=5)
    assert (report["probability_of_improvement_ci_low"], report["probability_of_improvement_ci_high"]) == \
        probability_of_improvement_ci(SLEEP_A, SLEEP_B, n_resamples=1000, seed=5)
    assert report["seeds_needed"] == seeds_needed(np.std(SLEEP_A, ddof=1), np.std(SLEEP_B, ddof=1))
    assert report["std_difference"] is None
    paired = compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=1000)
    assert paired["std_difference"] == pytest.approx(np.std(np.subtract(SLEEP_B, SLEEP_A), ddof=1))


def test_global_numpy_random_state_is_untouched():
    np.random.seed(1234)
    expected = np.random.random(3)
    np.random.seed(1234)
    bootstrap_ci(SLEEP_A, "mean", n_resamples=100)
    bootstrap_ci(SLEEP_A, "std", n_resamples=100)
    mean_difference(SLEEP_A, SLEEP_B, True, n_resamples=100)
    mean_difference(SLEEP_A, SLEEP_B, False, n_resamples=100)
    probability_of_improvement_ci(SLEEP_A, SLEEP_B, n_resamples=100)
    compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=100)
    variance_by_source({"init": SLEEP_A, "order": SLEEP_B}, n_resamples=100)
    seeds_needed(1.0, 1.0)
    assert np.array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("value", [31.7, 0.1, 55.55])
@pytest.mark.parametrize("n", [2, 9, 15])
@pytest.mark.parametrize("paired", [True, False])
def test_bit_identical_runs_collapse_the_interval(value, n, paired):
    # a plain numpy mean of nine copies of 31.7 is off by an ulp and their std is 4e-15: both must be exact here
    runs = [value] * n
    result = mean_difference(runs, runs, paired, n_resamples=200)
    assert result["difference"] == result["ci_low"] == result["ci_high"] == 0.0
    assert bootstrap_ci(runs, "mean", n_resamples=200) == (value, value)
    assert bootstrap_ci(runs, "std", n_resamples=200) == (0.0, 0.0)
    report = compare_groups(runs, runs, paired, n_resamples=200)
    assert report["verdict"] == "A and B are identical in every run (zero spread): no difference."
    assert (report["baseline"]["mean"], report["baseline"]["std"], report["seeds_needed"]) == (value, 0.0, 2)


def test_constant_shift_without_spread_is_certain():
    report = compare_groups([30.0] * 5, [31.5] * 5, paired=False, n_resamples=200)
    assert report["verdict"] == "B is better than A by 1.50 ± 0.00 points (95% CI 1.50 to 1.50)."
    assert report["probability_of_improvement"] == 1.0


def test_verdict_better():
    report = compare_groups(SLEEP_A, SLEEP_B, paired=True, n_resamples=2000)
    match = BETTER_OR_WORSE.fullmatch(report["verdict"])
    assert match and match.group(1) == "better", report["verdict"]
    difference = report["difference"]
    assert report["verdict"].startswith(f"B is better than A by {difference['difference']:.2f} ± "
                                        f"{(difference['ci_high'] - difference['ci_low']) / 2:.2f} points")
    assert float(match.group(2)) == pytest.approx(difference["ci_low"], abs=0.005)


def test_verdict_worse():
    report = compare_groups(SLEEP_B, SLEEP_A, paired=True, n_resamples=2000)
    match = BETTER_OR_WORSE.fullmatch(report["verdict"])
    assert match and match.group(1) == "worse", report["verdict"]
    assert report["verdict"].startswith("B is worse than A by 1.58 ± ")
    assert float(match.group(3)) < 0


def test_verdict_within_noise_names_the_seeds_needed():
    report = compare_groups(SLEEP_A, SLEEP_B, paired=False, n_resamples=2000)
    match = WITHIN_NOISE.fullmatch(report["verdict"])
    assert match, report["verdict"]
    assert report["verdict"].startswith("The difference (+1.58 points, 95% CI -")
    assert int(match.group(3)) == report["seeds_needed"] > 10
    other_level = compare_groups(SLEEP_A, SLEEP_B, paired=False, delta=2.5, confidence=0.9, n_resamples=2000)
    if "within the noise" in other_level["verdict"]:
        assert "90% CI" in other_level["verdict"] and "2.5-point difference" in other_level["verdict"]
    else:
        assert "(90% CI" in other_level["verdict"]


def test_variance_by_source_shares():
    groups = {"order": [1.0, 2.0], "init": [1.0, 3.0], IDENTICAL_SOURCE: [1.0, 1.0]}
    result = variance_by_source(groups, n_resamples=200)
    assert list(result) == sorted(groups)
    assert result["init"]["std"] ** 2 == pytest.approx(2.0)
    assert result["init"]["share"] == pytest.approx(0.8)
    assert result["order"]["share"] == pytest.approx(0.2)
    assert result[IDENTICAL_SOURCE]["share"] == 0.0
    assert variance_by_source(dict(reversed(list(groups.items()))), n_resamples=200) == result
    assert variance_by_source({"init": [2.0, 2.0], IDENTICAL_SOURCE: [2.0]}, n_resamples=200)["init"]["share"] is None
    json.dumps(result)


def test_variance_by_source_uses_a_distinct_seed_per_source():
    values = [1.0, 2.5, 2.0, 4.0, 3.0]
    result = variance_by_source({"a": values, "b": values}, n_resamples=500, seed=0)
    assert result["a"] == summarize_group(values, n_resamples=500, seed=0) | {"share": 0.5}
    assert result["b"] == summarize_group(values, n_resamples=500, seed=1) | {"share": 0.5}


@pytest.mark.parametrize("call, message", [
    (lambda: bootstrap_ci([]), "non-empty"),
    (lambda: bootstrap_ci([1.0, float("nan")]), "finite"),
    (lambda: bootstrap_ci([[1.0, 2.0]]), "1-D"),
    (lambda: bootstrap_ci([1.0, 2.0], stat="median"), "stat"),
    (lambda: bootstrap_ci([1.0, 2.0], confidence=1.0), "confidence"),
    (lambda: bootstrap_ci([1.0, 2.0], n_resamples=0), "n_resamples"),
    (lambda: bootstrap_ci([1.0, 2.0], seed=None), "seed"),
    (lambda: mean_difference([1.0, 2.0], [1.0, 2.0, 3.0], paired=True), "same length"),
    (lambda: mean_difference([1.0], [1.0, 2.0], paired=False), "at least 2"),
    (lambda: mean_difference([1.0, 2.0], [], paired=False), "candidate"),
    (lambda: probability_of_improvement([], [1.0]), "baseline"),
    (lambda: probability_of_improvement_ci([1.0, float("inf")], [1.0]), "finite"),
    (lambda: seeds_needed(1.0, 1.0, delta=0.0), "delta"),
    (lambda: seeds_needed(1.0, 1.0, delta=-1.0), "delta"),
    (lambda: seeds_needed(1.0, 1.0, power=1.0), "power"),
    (lambda: seeds_needed(1.0, 1.0, alpha=0.0), "alpha"),
    (lambda: seeds_needed(-1.0, 1.0), "std_baseline"),
    (lambda: seeds_needed(1.0, float("nan")), "std_candidate"),
    (lambda: compare_groups([1.0, 2.0], [1.0, 2.0], paired=False, delta=0.0), "delta"),
    (lambda: variance_by_source({}), "at least one source"),
    (lambda: variance_by_source({"init": [1.0, float("nan")]}), "'init'"),
    (lambda: t_quantile(0.5, 0), "degrees of freedom"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
