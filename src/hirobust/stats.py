"""Uncertainty of every number hirobust reports (docs/method.md §5), through scipy / statsmodels.

- an accuracy: its n and a 95% Wilson interval (``accuracy``);
- two models on the same images: the paired difference with a seeded bootstrap interval and the exact McNemar
  p-value (``paired_difference``);
- several training seeds: mean, standard deviation and a t interval over seeds (``seed_summary``), and the
  difference of two methods over seed-matched pairs on the same images with a two-level bootstrap that
  resamples seeds and images together (``seed_paired_difference``).

A difference whose interval contains 0 is "no measurable difference" (``verdict``). Per-image correctness
travels in reports as packed bit strings (``pack_bits`` / ``unpack_bits``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError

LEVEL = 0.95


def _bool(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=bool).reshape(-1)


def wilson(k: int, n: int, level: float = LEVEL) -> list[float]:
    """Wilson score interval [lo, hi] of k successes in n trials ([nan, nan] when n = 0)."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return [math.nan, math.nan]
    lo, hi = proportion_confint(int(k), int(n), alpha=1 - level, method="wilson")
    p = k / n  # rounding can leave the estimate a hair outside its own interval at k = 0 or n
    return [max(0.0, min(float(lo), p)), min(1.0, max(float(hi), p))]


def accuracy(correct) -> dict:
    """{"value", "n", "ci95"} of a boolean vector [N]."""
    c = _bool(correct)
    n, k = c.size, int(c.sum())
    return {"value": k / n if n else math.nan, "n": n, "ci95": wilson(k, n)}


def mcnemar_exact(a, b) -> float:
    """Exact (binomial) McNemar p-value of two paired boolean vectors; 1.0 when they never disagree."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = _bool(a), _bool(b)
    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    if n01 + n10 == 0:
        return 1.0
    table = [[int((a & b).sum()), n10], [n01, int((~a & ~b).sum())]]
    return float(mcnemar(table, exact=True).pvalue)


def _percentile(samples: np.ndarray, level: float) -> list[float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def paired_difference(a, b, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict:
    """acc(a) − acc(b) of two boolean vectors on the same images, with a seeded paired-bootstrap percentile
    interval, the exact McNemar p-value and the discordant counts."""
    a, b = _bool(a), _bool(b)
    if a.size != b.size:
        raise ConfigError(f"paired difference needs the same images: {a.size} vs {b.size} results")
    n = a.size
    d = a.astype(np.int8) - b.astype(np.int8)
    if n == 0:
        return {"diff": math.nan, "ci95": [math.nan, math.nan], "p_mcnemar": math.nan, "n": 0,
                "a_only": 0, "b_only": 0}
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, n, size=(n_boot, n))].mean(1)
    return {"diff": float(d.mean()), "ci95": _percentile(boots, level), "p_mcnemar": mcnemar_exact(a, b), "n": n,
            "a_only": int((d > 0).sum()), "b_only": int((d < 0).sum())}


def seed_summary(values: Sequence[float], level: float = LEVEL) -> dict:
    """Mean, sample sd and a t interval over training seeds (interval [nan, nan] for one seed)."""
    from scipy import stats as st

    v = np.asarray([x for x in values], dtype=float)
    k = v.size
    mean = float(v.mean()) if k else math.nan
    if k < 2:
        return {"mean": mean, "sd": math.nan, "seeds": k, "ci95": [math.nan, math.nan]}
    sd = float(v.std(ddof=1))
    half = float(st.t.ppf((1 + level) / 2, k - 1)) * sd / math.sqrt(k)
    return {"mean": mean, "sd": sd, "seeds": k, "ci95": [mean - half, mean + half]}


def seed_paired_difference(a: Sequence, b: Sequence, n_boot: int = 2000, seed: int = 0) -> dict:
    """Difference of two methods over seed-matched pairs: ``a[i]`` and ``b[i]`` are boolean vectors [N] of
    seed i on the same N images. The 95% and 90% intervals (and their Monte Carlo errors) come from the two-level
    bootstrap that resamples seeds and images together (:func:`fold_bootstrap` with one fold; conservative for
    this crossed design); with one seed it is the paired image bootstrap. Also reports each seed's difference and
    exact McNemar p."""
    A = np.stack([_bool(x) for x in a]).astype(np.int8)
    B = np.stack([_bool(x) for x in b]).astype(np.int8)
    if A.shape != B.shape:
        raise ConfigError(f"seed-paired difference needs the same seeds and images: {A.shape} vs {B.shape}")
    k, n = A.shape
    D = A - B  # [k, N]
    fb = fold_bootstrap([D], n_boot=n_boot, seed=seed)
    return {"diff": fb["value"], "ci95": fb["ci95"], "ci90": fb["ci90"], "mc_se_ci95": fb["mc_se_ci95"],
            "mc_se_ci90": fb["mc_se_ci90"], "seeds": k, "n": n, "n_boot": n_boot,
            "per_seed": [float(d.mean()) for d in D],
            "p_mcnemar_per_seed": [mcnemar_exact(A[i].astype(bool), B[i].astype(bool)) for i in range(k)],
            "seed_sd": float(D.mean(1).std(ddof=1)) if k > 1 else math.nan}


def two_level_bootstrap(stat, seeds: int, n: int, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> dict:
    """Estimate and percentile interval of ``stat(seed_idx [k], image_idx [n])`` (a statistic of per-image
    results over training seeds, e.g. a difference of transfer success rates), resampling seeds and images
    together as :func:`seed_paired_difference` does; ``stat`` must accept repeated indices."""
    rng = np.random.default_rng(seed)
    all_s, all_i = np.arange(seeds), np.arange(n)
    est = float(stat(all_s, all_i))
    boots = np.array([stat(rng.integers(0, seeds, size=seeds) if seeds > 1 else all_s, rng.integers(0, n, size=n))
                      for _ in range(n_boot)], dtype=float)
    boots = boots[np.isfinite(boots)]
    out = {"value": est, "ci95": _percentile(boots, level) if boots.size else [math.nan, math.nan], "seeds": seeds,
           "n": n, "n_boot": n_boot}
    if boots.size:  # the 90% interval (equivalence, non-inferiority) and each bound's Monte Carlo error
        out["ci90"] = _percentile(boots, 0.90)
        for name, lv in (("ci95", level), ("ci90", 0.90)):
            out[f"mc_se_{name}"] = [_quantile_mc_se(boots, q) for q in ((1 - lv) / 2, (1 + lv) / 2)]
    return out


def transfer_success(right: np.ndarray, rob: np.ndarray, idx: np.ndarray | None = None) -> float:
    """TSR on images ``idx`` (all if None): the share of the images right when clean (``right`` [N]) that an
    attack turns wrong (``rob`` [N]: right clean and attacked); NaN when none is right."""
    r, a = (right, rob) if idx is None else (right[idx], rob[idx])
    return float((r & ~a).sum() / r.sum()) if r.any() else math.nan


def paired_tsr_difference(right_a, rob_a, right_b, rob_b, n_boot: int = 2000, seed: int = 0) -> dict:
    """TSR(model a) − TSR(model b) on the same images (each model's own clean-right images as its denominator),
    with a seeded paired-bootstrap percentile interval over images: ``value``, ``ci95``, ``n``."""
    ra, aa, rb, ab = _bool(right_a), _bool(rob_a), _bool(right_b), _bool(rob_b)
    if not ra.size == aa.size == rb.size == ab.size:
        raise ConfigError(f"paired TSR difference needs the same images: {ra.size} vs {rb.size} results")
    stat = lambda _, i: transfer_success(ra, aa, i) - transfer_success(rb, ab, i)  # noqa: E731
    return two_level_bootstrap(stat, 1, ra.size, n_boot=n_boot, seed=seed)


def verdict(ci: Sequence[float]) -> str:
    """"higher" / "lower" when the interval excludes 0, else "no measurable difference"."""
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undetermined"
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    return "no measurable difference"


def decide(d: dict, threshold: float = 0.0) -> dict:
    """The verdict of a difference ``d`` (``ci95``, and ``mc_se_ci95`` where the interval was bootstrapped) against
    ``threshold``: "higher" / "lower" when the 95% interval excludes it, else "no measurable difference"; how far
    the deciding bound lies from the threshold in Monte Carlo standard errors (``mc_distance``); a verdict whose
    bound lies within 2 of them is "borderline (higher)" / "borderline (lower)": never a pass (docs/method.md §5)."""
    lo, hi = d["ci95"]
    se_lo, se_hi = d.get("mc_se_ci95") or [0.0, 0.0]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return {"decision": "undetermined", "mc_distance": math.nan}
    res = verdict([lo - threshold, hi - threshold])
    if res == "higher":
        gap, se = lo - threshold, se_lo
    elif res == "lower":
        gap, se = threshold - hi, se_hi
    else:
        gap, se = min(threshold - lo, hi - threshold), (se_lo if threshold - lo < hi - threshold else se_hi)
    dist = gap / se if se > 0 else math.inf
    if res in ("higher", "lower") and dist < 2:
        res = f"borderline ({res})"
    return {"decision": res, "mc_distance": dist}


def pack_bits(a) -> str:
    """A boolean vector as a base64 string of packed bits (its length travels beside it)."""
    return base64.b64encode(np.packbits(_bool(a)).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``n`` bits as a boolean vector."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    bits = np.unpackbits(raw)[:n].astype(bool)
    if bits.size != n:
        raise ConfigError(f"packed bits hold {bits.size} values, expected {n}: the report is corrupt")
    return bits


def fmt_ci(value: float, ci: Sequence[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    """``"59.6 [55.2, 63.9]"`` (percent by default); "—" for a missing value."""
    if value is None or value != value:
        return "—"
    if not ci or any(c is None or c != c for c in ci):
        return f"{scale * value:.{digits}f}"
    return f"{scale * value:.{digits}f} [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"


def fold_bootstrap(groups: Sequence, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Mean over folds of the per-fold mean of ``groups[f]`` ([seeds_f, images_f] values in {−1, 0, 1}: per-image
    correctness, or a paired difference of two models seed by seed), with percentile intervals (95% and 90%) from a
    three-level bootstrap that resamples folds, then each fold's training seeds and its images (the images are
    shared by the seeds of a fold, as the same images are attacked for every seed). The interval thus holds the
    fold-to-fold, the seed-to-seed and the image sampling variation.

    Exact and fast: resampling a fold's images draws multinomial counts over the distinct per-image columns
    (at most 3^seeds of them), never an index vector per replicate. Also returns each fold's mean and the Monte
    Carlo standard error of each interval bound (``mc_se``), for the "borderline" rule of docs/method.md §5."""
    rng = np.random.default_rng(seed)
    folds = [np.atleast_2d(np.asarray(g, dtype=np.int8)) for g in groups]
    folds = [g for g in folds if g.size]
    if not folds:
        return {"value": math.nan, "ci95": [math.nan] * 2, "ci90": [math.nan] * 2, "folds": 0, "per_fold": []}
    per_fold = [float(g.mean()) for g in folds]
    K = len(folds)
    boots = np.zeros((n_boot, K))  # the bootstrap means of each fold (fold f's own replicates)
    for f, g in enumerate(folds):
        boots[:, f] = _group_boots(g, n_boot, rng)
    pick = rng.integers(0, K, size=(n_boot, K)) if K > 1 else np.zeros((n_boot, 1), dtype=int)
    means = np.take_along_axis(boots, pick, axis=1).mean(1)
    out = {"value": float(np.mean(per_fold)), "folds": K, "per_fold": per_fold, "n": [int(g.shape[1]) for g in folds],
           "seeds": [int(g.shape[0]) for g in folds], "n_boot": n_boot}
    for name, level in (("ci95", 0.95), ("ci90", 0.90)):
        out[name] = _percentile(means, level)
        out[f"mc_se_{name}"] = [_quantile_mc_se(means, q) for q in ((1 - level) / 2, (1 + level) / 2)]
    return out


def _group_boots(g: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[B] bootstrap means of ``g`` [seeds, images] resampling its seeds and its images (shared by the seeds).
    Exact and fast: the images are drawn as multinomial counts over the distinct per-image columns."""
    k, n = g.shape
    pats, counts = np.unique(g.T, axis=0, return_counts=True)  # [U, k], [U]
    draw = rng.multinomial(n, counts / n, size=n_boot)  # [B, U] image counts per pattern
    s = rng.integers(0, k, size=(n_boot, k)) if k > 1 else np.zeros((n_boot, 1), dtype=int)
    pm = pats[:, s].mean(-1).T  # [B, U]: each pattern's mean over the resampled seeds
    return (draw * pm).sum(1) / n


def slope_bootstrap(xs: Sequence[float], groups: Sequence, n_boot: int = 10_000, seed: int = 0) -> dict:
    """The least-squares slope of the per-group means of ``groups[i]`` ([seeds, images] values, e.g. a paired
    difference of two models seed by seed) against ``xs[i]`` (e.g. a measured visual coherence), with percentile
    intervals (95% and 90%) and their Monte Carlo errors from a bootstrap that resamples each group's seeds and
    images independently (the groups are separate experiments; their x is fixed by design)."""
    x = np.asarray(xs, dtype=float)
    gs = [np.atleast_2d(np.asarray(g, dtype=np.int8)) for g in groups]
    if len(gs) != x.size or x.size < 3:
        raise ConfigError(f"a slope needs at least 3 groups, each with its x; got {len(gs)} groups and {x.size} x")
    rng = np.random.default_rng(seed)
    means = np.stack([_group_boots(g, n_boot, rng) for g in gs], 1)  # [B, G]
    xc = x - x.mean()
    slopes = (means - means.mean(1, keepdims=True)) @ xc / (xc @ xc)
    est = np.array([g.mean() for g in gs])
    out = {"value": float((est - est.mean()) @ xc / (xc @ xc)), "x": x.tolist(), "y": est.tolist(),
           "n_boot": n_boot, "groups": len(gs)}
    for name, level in (("ci95", 0.95), ("ci90", 0.90)):
        out[name] = _percentile(slopes, level)
        out[f"mc_se_{name}"] = [_quantile_mc_se(slopes, q) for q in ((1 - level) / 2, (1 + level) / 2)]
    return out


def _quantile_mc_se(samples: np.ndarray, q: float) -> float:
    """Monte Carlo standard error of the q-quantile of ``samples`` (asymptotic: √(q(1−q)/B) / density there,
    the density from the spacing of the neighbouring order statistics)."""
    B = samples.size
    srt = np.sort(samples)
    h = max(1, int(math.sqrt(B)))
    i = int(q * (B - 1))
    lo, hi = srt[max(0, i - h)], srt[min(B - 1, i + h)]
    width = (min(B - 1, i + h) - max(0, i - h)) / B
    dens = width / (hi - lo) if hi > lo else math.inf
    return float(math.sqrt(q * (1 - q) / B) / dens) if math.isfinite(dens) else 0.0


def non_inferiority(d: dict, margin: float) -> str:
    """The rule for "A is no more than ``margin`` below B" on a difference A − B with a 90% interval ``ci90``
    (a one-sided test at 5%, as in two one-sided tests): "non-inferior" when its lower bound is above −margin,
    "inferior" when its upper bound is below −margin, else "inconclusive"; "borderline" is added when the
    deciding bound lies within 2 Monte Carlo standard errors of −margin."""
    lo, hi = d["ci90"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undetermined"
    res = "non-inferior" if lo > -margin else "inferior" if hi < -margin else "inconclusive"
    bound, se = (lo, d.get("mc_se_ci90", [0, 0])[0]) if res != "inferior" else (hi, d.get("mc_se_ci90", [0, 0])[1])
    return res + (" (borderline)" if abs(bound + margin) < 2 * se else "")


def equivalence(d: dict, margin: float) -> str:
    """"within ±margin" (two one-sided tests: the 90% interval inside ±margin), "outside ±margin" (the 90%
    interval entirely outside), else "inconclusive"; "borderline" as in :func:`non_inferiority`."""
    lo, hi = d["ci90"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "undetermined"
    if -margin < lo and hi < margin:
        res, gap = "within", min(lo + margin, margin - hi)
    elif hi < -margin or lo > margin:
        res, gap = "outside", max(-margin - hi, lo - margin)
    else:
        return "inconclusive"
    se = max(d.get("mc_se_ci90", [0, 0]))
    return f"{res} ±{100 * margin:g} points" + (" (borderline)" if gap < 2 * se else "")
