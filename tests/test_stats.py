"""hirobust.stats against independent references (scipy's own Wilson interval and binomial test)."""

import math

import numpy as np
import pytest
from scipy import stats as st

from hirobust.stats import (
    accuracy,
    fmt_ci,
    mcnemar_exact,
    pack_bits,
    paired_difference,
    paired_tsr_difference,
    seed_paired_difference,
    seed_summary,
    transfer_success,
    unpack_bits,
    verdict,
    wilson,
)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (596, 1000), (1, 2000), (1999, 2000)])
def test_wilson_matches_scipy(k, n):
    ref = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert 0 <= lo <= k / n <= hi <= 1


def test_accuracy_and_empty():
    a = accuracy(np.array([1, 0, 1, 1], dtype=bool))
    assert a["value"] == 0.75 and a["n"] == 4 and a["ci95"][0] < 0.75 < a["ci95"][1]
    e = accuracy(np.zeros(0, dtype=bool))
    assert e["n"] == 0 and math.isnan(e["value"]) and all(math.isnan(c) for c in e["ci95"])


@pytest.mark.parametrize("seed", range(4))
def test_mcnemar_exact_is_the_two_sided_binomial_test_of_discordant_pairs(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(300) < 0.6
    b = np.where(rng.random(300) < 0.8, a, rng.random(300) < 0.5)
    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    ref = st.binomtest(n10, n01 + n10, 0.5).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(ref, rel=1e-9)
    assert mcnemar_exact(a, a) == 1.0


def test_paired_bootstrap_is_seeded_and_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.62
    b = np.where(rng.random(2000) < 0.7, a, rng.random(2000) < 0.55)
    d1, d2 = paired_difference(a, b, seed=3), paired_difference(a, b, seed=3)
    assert d1 == d2
    diff = a.mean() - b.mean()
    assert d1["diff"] == pytest.approx(diff)
    sd = (a.astype(float) - b.astype(float)).std(ddof=1) / math.sqrt(a.size)
    lo, hi = d1["ci95"]
    assert lo < diff < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * sd, rel=0.12)  # the bootstrap of a mean ≈ its normal interval
    assert d1["a_only"] - d1["b_only"] == int(a.sum()) - int(b.sum())
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, b[:10])


def test_paired_interval_separates_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    base = rng.random(2000) < 0.5
    better = base | (rng.random(2000) < 0.1)  # strictly more right answers
    assert verdict(paired_difference(better, base)["ci95"]) == "higher"
    assert verdict(paired_difference(base, better)["ci95"]) == "lower"
    same = np.where(rng.random(2000) < 0.5, base, rng.permutation(base))
    assert verdict(paired_difference(same, base)["ci95"]) == "no measurable difference"


def test_seed_summary_is_scipys_t_interval():
    v = [0.61, 0.64, 0.59]
    s = seed_summary(v)
    lo, hi = st.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=st.sem(v))
    assert s["mean"] == pytest.approx(np.mean(v)) and s["sd"] == pytest.approx(np.std(v, ddof=1))
    assert s["ci95"] == pytest.approx([lo, hi])
    one = seed_summary([0.5])
    assert one["seeds"] == 1 and math.isnan(one["sd"])


def test_seed_paired_difference_widens_with_seed_variance():
    rng = np.random.default_rng(2)
    base = [rng.random(1000) < 0.5 for _ in range(3)]
    steady = [b | (rng.random(1000) < 0.1) for b in base]
    d = seed_paired_difference(steady, base, seed=0)
    assert d["seeds"] == 3 and len(d["per_seed"]) == 3 and verdict(d["ci95"]) == "higher"
    one = seed_paired_difference(steady[:1], base[:1], seed=0)
    assert one["ci95"] == pytest.approx(paired_difference(steady[0], base[0], seed=0)["ci95"], abs=0.01)
    noisy = [steady[0], base[1], base[2] | (rng.random(1000) < 0.3)]  # one seed helps, one hurts, one helps a lot
    wide = seed_paired_difference(noisy, base, seed=0)
    assert (wide["ci95"][1] - wide["ci95"][0]) > (d["ci95"][1] - d["ci95"][0])


def test_bits_round_trip_and_format():
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 2001):
        a = rng.random(n) < 0.5
        assert np.array_equal(unpack_bits(pack_bits(a), n), a)
    with pytest.raises(ValueError, match="corrupt"):
        unpack_bits(pack_bits(np.ones(8, dtype=bool)), 20)
    assert fmt_ci(0.596, [0.552, 0.639]) == "59.6 [55.2, 63.9]"
    assert fmt_ci(float("nan"), None) == "—"


def test_paired_tsr_difference_is_the_difference_of_each_models_own_tsr():
    """TSR's denominator is each model's own leaf-right images: a right 8 of 10, 2 turned wrong (TSR 0.25); b right
    5 of 10, 4 turned wrong (0.8). The interval is seeded and holds the estimate; unequal lengths are refused."""
    ra = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    aa = ra & np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], bool)
    rb = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    ab = rb & np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], bool)
    assert transfer_success(ra, aa) == pytest.approx(0.25) and transfer_success(rb, ab) == pytest.approx(0.8)
    d = paired_tsr_difference(ra, aa, rb, ab, seed=3)
    assert d["value"] == pytest.approx(-0.55) and d["n"] == 10 and d["ci95"][0] <= -0.55 <= d["ci95"][1]
    assert d == paired_tsr_difference(ra, aa, rb, ab, seed=3)
    assert math.isnan(transfer_success(np.zeros(4, bool), np.zeros(4, bool)))
    with pytest.raises(ValueError, match="same images"):
        paired_tsr_difference(ra, aa, rb[:9], ab[:9])


def test_tost_equivalence_agrees_with_statsmodels_ttost_paired():
    """"Within ±m" = the 90% paired interval inside ±m = both one-sided tests reject at 5% (statsmodels)."""
    from statsmodels.stats.weightstats import DescrStatsW, ttost_paired

    from hirobust.stats import equivalence, fold_bootstrap

    rng = np.random.default_rng(3)
    n = 4000
    a = rng.random(n) < 0.6
    b = np.where(rng.random(n) < 0.85, a, rng.random(n) < 0.6)
    d = a.astype(np.int8) - b.astype(np.int8)
    fb = fold_bootstrap([d[None]], n_boot=20_000)
    lo, hi = DescrStatsW(d.astype(float)).tconfint_mean(alpha=0.10)
    assert abs(fb["ci90"][0] - lo) < 0.002 and abs(fb["ci90"][1] - hi) < 0.002
    for m in (0.005, 0.01, 0.02, 0.05):
        p = ttost_paired(a.astype(float), b.astype(float), -m, m)[0]
        if abs(p - 0.05) > 0.02:  # away from the boundary the bootstrap and the t test must agree
            assert equivalence(fb, m).startswith("within") == (p < 0.05), (m, p, fb["ci90"])


def test_two_level_bootstrap_matches_explicit_resampling_of_seeds_and_images():
    """fold_bootstrap with one fold (the study's run rows and paired differences) = resampling seeds and images by
    index, the textbook two-level bootstrap; its interval widens with the seed-to-seed variation."""
    from hirobust.stats import fold_bootstrap

    rng = np.random.default_rng(0)
    k, n = 3, 600
    base = rng.random(n)
    bits = np.stack([(base + 0.15 * s) > 0.55 for s in range(k)]).astype(np.int8)  # seeds differ on purpose
    fb = fold_bootstrap([bits], n_boot=20_000, seed=1)
    boots = np.array([bits[rng.integers(0, k, k)][:, rng.integers(0, n, n)].mean() for _ in range(20_000)])
    ref = np.quantile(boots, [0.025, 0.975])
    assert np.allclose(fb["ci95"], ref, atol=0.004), (fb["ci95"], ref)
    images_only = fold_bootstrap([bits[:1]], n_boot=20_000, seed=1)
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(fb) > width(images_only)


def test_decide_marks_a_bound_within_two_monte_carlo_errors_as_borderline():
    from hirobust.stats import decide

    assert decide({"ci95": [0.002, 0.03], "mc_se_ci95": [0.0005, 0.0005]})["decision"] == "higher"
    close = decide({"ci95": [0.0005, 0.03], "mc_se_ci95": [0.0005, 0.0005]})
    assert close["decision"] == "borderline (higher)" and close["mc_distance"] == pytest.approx(1.0)
    assert decide({"ci95": [-0.03, -0.01], "mc_se_ci95": [0.001, 0.001]})["decision"] == "lower"
    assert decide({"ci95": [-0.01, 0.01]})["decision"] == "no measurable difference"


def test_slope_bootstrap_recovers_a_planted_slope_and_none_where_there_is_none():
    from scipy import stats as st

    from hirobust.stats import slope_bootstrap

    rng = np.random.default_rng(0)
    xs = [1.6, 1.4, 1.25, 1.1, 1.0]
    planted = [(rng.random((3, 800)) < 0.3 + 0.4 * (1.6 - x)).astype(np.int8) for x in xs]  # mean falls 0.4 per unit
    s = slope_bootstrap(xs, planted)
    ref = st.linregress(xs, [g.mean() for g in planted])
    assert s["value"] == pytest.approx(ref.slope) and s["ci95"][1] < 0 and s["ci95"][0] < -0.4 < s["ci95"][1] + 0.1
    flat = [(rng.random((3, 800)) < 0.5).astype(np.int8) for _ in xs]
    f = slope_bootstrap(xs, flat)
    assert f["ci95"][0] < 0 < f["ci95"][1]
    with pytest.raises(ValueError, match="at least 3 groups"):
        slope_bootstrap([1.0, 2.0], flat[:2])
