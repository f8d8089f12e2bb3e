"""The evidence study's analysis: tables with intervals over seeds and images, paired differences to the
baseline, the verdict on each of the paper's findings, HiRo's mechanism diagnostics, plots.

Everything is computed from the cells that exist (``<part>/evals/*.json``, ``<part>/runs/*/report.json``), so a
partial study gives a partial, still correct, analysis. Accuracies over several training seeds are
mean ± sd with a t interval over seeds; with one seed, the Wilson interval over images. Differences between
methods are seed-matched and paired on the same images (two-level bootstrap, :mod:`hirobust.stats`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..io import write_json, write_text
from ..records import subset_of
from ..stats import (
    fmt_ci,
    fold_bootstrap,
    paired_difference,
    seed_paired_difference,
    two_level_bootstrap,
)
from ..stats import transfer_success as _tsr
from .study_numbers import N_BOOT, _arr, _clean_full, _right, _rob, _vd


# ---------------------------------------------------------------------- loading
def run_and_seed(tag: str) -> tuple[str, int]:
    """A cell's tag (``<run>-s<seed>``, or ``clip``) -> (run, seed)."""
    run, _, seed = tag.rpartition("-s")
    return (run, int(seed)) if run else (tag, 0)


def load_part(out: Path, pname: str) -> dict:
    """{"runs": {run: [entry per seed, in seed order]}, "report": a report's header, "history": {tag: history},
    "autoattack": {tag: entry}}."""
    runs: dict[str, dict[int, dict]] = {}
    header = None
    for f in sorted((out / pname / "evals").glob("*.json")):
        rep = json.loads(f.read_text())
        tag, entry = next(iter(rep["models"].items()))
        run, seed = run_and_seed(tag)
        runs.setdefault(run, {})[seed] = entry
        header = header or {k: v for k, v in rep.items() if k != "models"}
    hist = {}
    for f in sorted((out / pname / "runs").glob("*/report.json")):
        hist[f.parent.name] = json.loads(f.read_text()).get("train", {}).get("history", [])
    aa = {f.stem: next(iter(json.loads(f.read_text())["models"].values()))
          for f in sorted((out / pname / "autoattack").glob("*.json"))}
    return {"runs": {r: [s[k] for k in sorted(s)] for r, s in runs.items()}, "report": header, "history": hist,
            "autoattack": aa}


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else math.nan


# ---------------------------------------------------------------------- numbers
def summarise(values: list[float], bits: list[np.ndarray]) -> dict:
    """Accuracy over seeds and images (``bits``: one [N] correctness vector per seed, the same images): mean, the
    sd over seeds, and a percentile interval from a bootstrap that resamples seeds and images together (one seed:
    images only), labelled with what it covers. Rows of one seed and of several are thus comparable."""
    B = np.stack([np.asarray(b, dtype=np.int8) for b in bits])
    fb = fold_bootstrap([B], n_boot=N_BOOT)
    k, n = B.shape
    out = {"mean": fb["value"], "sd": float(np.std(values, ddof=1)) if k > 1 else math.nan, "ci95": fb["ci95"],
           "ci90": fb["ci90"], "seeds": k, "n": n,
           "interval": f"bootstrap over {k} seeds × {n} images" if k > 1 else f"bootstrap over {n} images"}
    if fb["ci95"][0] == fb["ci95"][1]:  # all right (or all wrong): nothing to resample; Wilson still says how sure
        from ..stats import wilson

        out["ci95"], out["ci90"] = wilson(int(B.sum()), B.size), wilson(int(B.sum()), B.size, 0.90)
        out["interval"] = f"Wilson over {B.size} results (all equal: nothing to resample)"
    return out


def paired_bits(A: list[np.ndarray], B: list[np.ndarray]) -> dict:
    """A − B over seed-matched pairs of [N] correctness vectors on the same images, with B = 10,000
    (:func:`~hirobust.stats.seed_paired_difference`: the two-level bootstrap over seeds and images)."""
    return seed_paired_difference(A, B, n_boot=N_BOOT)


def run_table(part: dict, levels: int, attack: str = "pgd") -> dict:
    """Per run: clean[b], robust[b] (level-b attack read at b), TSR(a→0) for a ≥ 1, each with its interval."""
    out = {}
    for run, entries in part["runs"].items():
        entries = [e for e in entries if attack in e["per_image"]["attacks"]]  # CW may be seed 0's only
        if not entries:
            continue
        row: dict = {"seeds": len(entries), "clean": {}, "robust": {}, "tsr_to_leaf": {}}
        for b in range(levels):
            cb = [_clean_full(e, b) for e in entries]
            row["clean"][str(b)] = summarise([float(x.mean()) for x in cb], cb)
            if str(b) in entries[0]["attacks"].get(attack, {}).get("robust", {}):
                rb = [_rob(e, b, b, attack) for e in entries]
                row["robust"][str(b)] = summarise([float(x.mean()) for x in rb], rb)
        for a in range(1, levels):
            if str(a) in entries[0]["attacks"].get(attack, {}).get("robust", {}):
                row["tsr_to_leaf"][str(a)] = tsr_stat(entries, a, 0, attack)
        row["tsr_leaf"] = tsr_stat(entries, 0, 0, attack)
        out[run] = row
    return out


def tsr_stat(entries: list[dict], a: int, b: int, attack: str = "pgd") -> dict:
    """TSR(a→b) averaged over seeds, with a two-level bootstrap interval."""
    R = [_right(e, b) for e in entries]
    A = [_rob(e, a, b, attack) for e in entries]
    return two_level_bootstrap(lambda s, i: _nanmean([_tsr(R[k], A[k], i) for k in s]), len(R), R[0].size,
                               n_boot=N_BOOT)


def paired_to_baseline(part: dict, base: str, levels: int, attack: str = "pgd", mask=None) -> dict:
    """Per run ≠ base and level b: seed-matched paired differences of clean and same-level robust accuracy, and of
    TSR(a→0), on the same images. ``mask(entry) -> bool [N]`` restricts to a subset of images (e.g. unseen)."""
    out = {}
    if base not in part["runs"]:
        return out
    B = part["runs"][base]
    for run, A in part["runs"].items():
        if run == base:
            continue
        k = min(len(A), len(B))
        row: dict = {"seeds": k, "robust": {}, "clean": {}, "tsr_to_leaf": {}}
        for b in range(levels):
            if str(b) not in A[0]["attacks"].get(attack, {}).get("robust", {}):
                continue
            m = mask(A[0]) if mask else slice(None)
            row["robust"][str(b)] = _vd(paired_bits([_rob(e, b, b, attack)[m] for e in A[:k]],
                                                    [_rob(e, b, b, attack)[m] for e in B[:k]]))
            if mask is None:
                row["clean"][str(b)] = _vd(paired_bits([_clean_full(e, b) for e in A[:k]],
                                                       [_clean_full(e, b) for e in B[:k]]))
        if mask is None:
            row["tsr_matched"], row["robust_leaf_under"] = {}, {}
            for a in range(1, levels):
                if str(a) in A[0]["attacks"].get(attack, {}).get("robust", {}):
                    row["tsr_to_leaf"][str(a)] = _vd(_tsr_diff(A[:k], B[:k], a, attack))
                    row["tsr_matched"][str(a)] = _vd(_tsr_diff(A[:k], B[:k], a, attack, matched=True))
                    row["robust_leaf_under"][str(a)] = _vd(paired_bits([_rob(e, a, 0, attack) for e in A[:k]],
                                                                       [_rob(e, a, 0, attack) for e in B[:k]]))
        out[run] = row
    return out


def _tsr_diff(A: list[dict], B: list[dict], a: int, attack: str, matched: bool = False) -> dict:
    """TSR(a→0) of A − of B, seed-matched, two-level bootstrap. Each model's own clean-right images are its
    denominator; ``matched``: the images *both* models get right clean (the same denominator, so a model that is
    right on fewer, harder images cannot look like it transfers less)."""
    RA, AA = [_right(e, 0) for e in A], [_rob(e, a, 0, attack) for e in A]
    RB, AB = [_right(e, 0) for e in B], [_rob(e, a, 0, attack) for e in B]
    if matched:
        RA = RB = [x & y for x, y in zip(RA, RB)]
    stat = lambda s, i: _nanmean([_tsr(RA[k], AA[k], i) - _tsr(RB[k], AB[k], i) for k in s])  # noqa: E731
    return {**two_level_bootstrap(stat, len(RA), RA[0].size, n_boot=N_BOOT),
            "denominator": "images both models get right clean" if matched else "each model's clean-right images"}


def premise(part: dict, base: str, levels: int, attack: str = "pgd") -> dict:
    """Finding (a): for flat AFT, the share of correct level-b answers a level-b attack breaks, TSR(b→b), minus the
    share of correct leaf answers the leaf attack breaks, TSR(0→0), per superclass level b (> 0: superclass
    decisions are the weaker ones). Finding (b): TSR(a→0) against TSR(0→0)/2."""
    if base not in part["runs"]:
        return {}
    E = part["runs"][base]
    out: dict = {"a": {}, "b": {}}
    R0, A0 = [_right(e, 0) for e in E], [_rob(e, 0, 0, attack) for e in E]
    leaf = lambda s, i, k: _tsr(R0[k], A0[k], i)  # noqa: E731
    for b in range(1, levels):
        if str(b) not in E[0]["attacks"].get(attack, {}).get("robust", {}):
            continue
        Rb, Ab = [_right(e, b) for e in E], [_rob(e, b, b, attack) for e in E]
        d = two_level_bootstrap(lambda s, i, Rb=Rb, Ab=Ab: _nanmean([_tsr(Rb[k], Ab[k], i) - leaf(s, i, k) for k in s]),
                                len(E), R0[0].size, n_boot=N_BOOT)
        out["a"][str(b)] = _vd(d)
        Ab0 = [_rob(e, b, 0, attack) for e in E]
        d = two_level_bootstrap(lambda s, i, A=Ab0: _nanmean([_tsr(R0[k], A[k], i) - leaf(s, i, k) / 2 for k in s]),
                                len(E), R0[0].size, n_boot=N_BOOT)
        out["b"][str(b)] = _vd(d)
    return out


def mechanism(part: dict, levels: int) -> dict:
    """Per HiRo run (mean over seeds): text and image depth per level at the first step and at the end (mean of
    the last tenth of the steps), hinge activity, τ, α, δ_T/‖w‖; whether parents end shallower than leaves."""
    out = {}
    for tag, hist in part["history"].items():
        if not hist or "depth_text_L0" not in hist[0]:
            continue
        run = run_and_seed(tag)[0]
        tail = hist[-max(1, len(hist) // 10):]
        row = {k: [hist[0][k], float(np.mean([h[k] for h in tail]))] for k in hist[0]
               if k.startswith(("depth_", "gap_", "alpha", "tau", "delta_t"))}
        out.setdefault(run, []).append(row)
    res = {}
    for run, rows in out.items():
        keys = rows[0].keys()
        m = {k: [float(np.mean([r[k][0] for r in rows])), float(np.mean([r[k][1] for r in rows]))] for k in keys}
        for kind in ("text", "img"):
            d = [m.get(f"depth_{kind}_L{b}", [math.nan] * 2)[1] for b in range(levels)]
            ok = [d[b + 1] < d[b] for b in range(levels - 1) if math.isfinite(d[b]) and math.isfinite(d[b + 1])
                  and d[b + 1] > 0]
            m[f"{kind}_parents_shallower"] = bool(ok) and all(ok)
        m["seeds"] = len(rows)
        res[run] = m
    return res


def analyse_part(part: dict, base: str, cfg, single: str | None) -> dict:
    rep = part["report"]
    L = rep["num_levels"]
    res = {"dataset": rep["dataset"], "tree": rep["tree"], "levels": rep["levels"], "chance": rep.get("chance"),
           "eps": rep["eps"], "attack": rep["attack"], "runs": {r: len(e) for r, e in part["runs"].items()},
           "table": run_table(part, L), "paired": paired_to_baseline(part, base, L), "premise": premise(part, base, L),
           "mechanism": mechanism(part, L)}
    if "cw" in rep["attack"]["attacks"]:
        res["table_cw"] = run_table(part, L, "cw")
    forest = [r for r in part["runs"] if "forest" in r]
    if forest and single in part["runs"]:
        res["forest_vs_single"] = paired_to_baseline({"runs": {single: part["runs"][single],
                                                               forest[0]: part["runs"][forest[0]]}},
                                                     single, L)[forest[0]]
    first = next(iter(part["runs"].values()))[0]
    if first.get("by_class_group"):
        unseen = set(first["by_class_group"]["unseen_classes"])
        leaves = rep["levels"][0]
        is_unseen = np.array([n in unseen for n in leaves])
        mask = lambda e: is_unseen[_arr(subset_of(e, "robust")[0])]  # noqa: E731
        res["unseen_paired"] = paired_to_baseline(part, base, L, mask=mask)
        res["seen_paired"] = paired_to_baseline(part, base, L, mask=lambda e: ~mask(e))
        if "clip" in part["runs"]:
            res["unseen_vs_clip"] = {r: d for r, d in paired_to_baseline(part, "clip", L, mask=mask).items()}
        res["unseen_table"] = {r: {g: e[0]["by_class_group"][g] for g in ("seen", "unseen")}
                               for r, e in part["runs"].items()}
        res["unseen_only_nodes"] = first["by_class_group"]["unseen_only_nodes"]
    if part["autoattack"]:
        res["autoattack"] = {t: {"robust": e["attacks"]["autoattack"]["robust"],
                                 "robust_ci95": e["attacks"]["autoattack"]["robust_ci95"],
                                 "n": e["attacks"]["autoattack"]["samples"],
                                 "vs_pgd": autoattack_vs_pgd(e, _seed_entry(part, t), rep.get("eval_config", {}))}
                             for t, e in part["autoattack"].items()}
    return res


def _seed_entry(part: dict, tag: str) -> dict | None:
    """The PGD evaluation of an AutoAttack cell's model (``<run>-s<seed>``, or ``clip``)."""
    run, seed = run_and_seed(tag)
    entries = part["runs"].get(run, [])
    return entries[seed] if seed < len(entries) else None


def autoattack_vs_pgd(aa: dict, pgd: dict | None, eval_cfg: dict) -> dict | None:
    """AutoAttack against the study's PGD on the images both attacked (AutoAttack's seeded subset lies inside
    PGD's: :func:`~hirobust.data.base.nested_positions`), per attacked level, read at that level: AutoAttack − PGD
    robust accuracy with its paired interval; ``a_only`` counts images PGD broke and AutoAttack did not, ``b_only``
    the reverse. None when the subsets cannot be matched (another clean subset, or labels that disagree)."""
    import torch

    from ..data.base import nested_positions

    if pgd is None or eval_cfg.get("clean_samples") is not None or "robust" not in pgd.get("per_image", {}):
        return None
    labels_aa, labels_pgd = subset_of(aa, "robust")[0], subset_of(pgd, "robust")[0]
    if len(labels_aa) > len(labels_pgd):
        return None
    pos = nested_positions(aa["per_image"]["clean"]["n"], len(labels_aa), len(labels_pgd), eval_cfg.get("seed", 0))
    if not torch.equal(labels_aa, labels_pgd[pos]):
        return None
    out = {}
    for lvl in aa["per_image"]["attacks"]["autoattack"]["levels"]:
        a, p = _rob(aa, lvl, lvl, "autoattack"), _rob(pgd, lvl, lvl)[pos.numpy()]
        out[lvl] = {**_vd(paired_difference(a, p)), "autoattack": float(a.mean()), "pgd": float(p.mean())}
    return out


def write_study(cfg, out: Path) -> dict:
    """Rebuild study.json, study.md and the plots from the cells that exist."""
    from .study_markdown import to_markdown
    from .study_plots import plot_study

    single = cfg.tune.run if cfg.tune is not None else None
    study: dict = {"parts": {}, "config": None}
    loaded = {}
    for pname in cfg.parts:
        part = load_part(out, pname)
        if part["runs"]:
            loaded[pname] = part
            study["parts"][pname] = analyse_part(part, cfg.baseline, cfg, single)
    from .study_knob import knob_rows, knob_slopes
    from .study_rules import finding_verdicts, rule_verdicts

    study["knob"] = knob_rows(study, cfg)
    study["knob_slope"] = knob_slopes(study, loaded, cfg)
    study["findings"] = finding_verdicts(study, cfg)  # the rules as first coded
    main = study["parts"].get(next(iter(cfg.parts)), {})
    earlier = {cfg.rules["code_rules"]: study["findings"]} if cfg.rules.get("code_rules") else {}
    study["rules"] = {**earlier, **rule_verdicts({**main, "knob_slope": study["knob_slope"]}, cfg.rules,
                                                 study["parts"])}
    timing = out / "timing.json"
    study["timing"] = json.loads(timing.read_text()) if timing.exists() else {}
    study["compute_seconds"] = sum(study["timing"].values())
    tune = out / "tune" / "choice.json"
    study["tune"] = json.loads(tune.read_text()) if tune.exists() else None
    from dataclasses import asdict

    from .env import provenance

    study["provenance"] = provenance(asdict(cfg))
    study["plots"] = plot_study(study, out, loaded)
    write_json(study, out / "study.json")
    write_text(to_markdown(study, cfg), out / "study.md")
    return study


def fmt_row(s: dict | None) -> str:
    if not s:
        return "—"
    v = s.get("mean", s.get("value"))
    return fmt_ci(v, s.get("ci95"))
