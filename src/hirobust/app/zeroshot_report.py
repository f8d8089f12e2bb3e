"""The analysis of ``hirobust zeroshot``: seen / unseen / all leaves at every level, per fold and pooled over folds.

Every accuracy and every difference is the mean over folds of the per-fold mean over seeds and images, with a
three-level bootstrap interval (folds, seeds, images: :func:`hirobust.stats.fold_bootstrap`). Differences of a run
to the baseline are seed-matched and paired on the same images; readout ablations are paired with the same model
read as trained. Verdicts follow ``rules`` of the config (fixed before the data).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io import write_json, write_text
from ..records import correct, subset_of
from ..stats import equivalence, fmt_ci, fold_bootstrap, non_inferiority, verdict
from .markdown import table_lines as table

GROUPS = ("seen", "unseen", "all")


def _bits(entry: dict, kind: str, b: int) -> np.ndarray:
    """Per-image correctness [N]: ``clean`` on the whole split, ``robust`` under the level-b PGD read at b."""
    if kind == "clean":
        return subset_of(entry, "clean")[1][str(b)].numpy()
    return correct(entry, "pgd", b, b).numpy()


def _mask(entry: dict, kind: str, group: str, unseen: set[int]) -> np.ndarray:
    labels = subset_of(entry, "clean" if kind == "clean" else "robust")[0].numpy()
    if group == "all":
        return np.ones(labels.shape, dtype=bool)
    u = np.isin(labels, sorted(unseen))
    return u if group == "unseen" else ~u


def _unseen_ids(fold: dict) -> set[int]:
    header = fold["header"]
    entry = next(iter(fold["runs"].values()))[0]
    names = set(entry.get("by_class_group", {}).get("unseen_classes", []))
    return {i for i, n in enumerate(header["levels"][0]) if n in names}


def _stack(entries: list[dict], kind: str, b: int, mask: np.ndarray) -> np.ndarray:
    return np.stack([_bits(e, kind, b)[mask] for e in entries]).astype(np.int8)


def _has(entry: dict, kind: str, b: int) -> bool:
    return kind == "clean" or str(b) in entry["attacks"].get("pgd", {}).get("robust", {})


def accuracies(results: dict, levels: int) -> dict:
    """{run: {group: {kind: {level: fold_bootstrap}}}} for every run and readout (``run@readout``)."""
    out: dict = {}
    for name, per_fold in _models(results).items():
        row: dict = {}
        for g in GROUPS:
            for kind in ("clean", "robust"):
                for b in range(levels):
                    stacks = []
                    for i, entries in per_fold.items():
                        if _has(entries[0], kind, b):
                            m = _mask(entries[0], kind, g, _unseen_ids(results[i]))
                            stacks.append(_stack(entries, kind, b, m))
                    if stacks:
                        row.setdefault(g, {}).setdefault(kind, {})[str(b)] = _short(fold_bootstrap(stacks))
        out[name] = row
    return out


def _models(results: dict) -> dict:
    """{name: {fold: [entry per seed]}}: the runs, then each readout as ``run@readout``."""
    models: dict = {}
    for i, fold in results.items():
        for run, entries in fold["runs"].items():
            models.setdefault(run, {})[i] = entries
        for run, d in fold["readouts"].items():
            for r, entries in d.items():
                models.setdefault(f"{run}@{r}", {})[i] = entries
    return models


def differences(results: dict, levels: int, pairs: list[tuple[str, str]], margin: float) -> dict:
    """{"a − b": {group: {kind: {level: fold_bootstrap + verdicts}}}}, seed-matched and paired per fold."""
    models = _models(results)
    out: dict = {}
    for a, b in pairs:
        if a not in models or b not in models:
            continue
        row: dict = {}
        for g in GROUPS:
            for kind in ("clean", "robust"):
                for lvl in range(levels):
                    stacks = []
                    for i in sorted(set(models[a]) & set(models[b])):
                        A, B = models[a][i], models[b][i]
                        k = min(len(A), len(B))
                        if not (_has(A[0], kind, lvl) and _has(B[0], kind, lvl)):
                            continue
                        m = _mask(A[0], kind, g, _unseen_ids(results[i]))
                        stacks.append(_stack(A[:k], kind, lvl, m) - _stack(B[:k], kind, lvl, m))
                    if stacks:
                        d = _short(fold_bootstrap(stacks))
                        d["verdict"] = verdict(d["ci95"])
                        d["non_inferiority"] = non_inferiority(d, margin)
                        d["equivalence"] = equivalence(d, margin)
                        row.setdefault(g, {}).setdefault(kind, {})[str(lvl)] = d
        out[f"{a} − {b}"] = row
    return out


def _short(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "n_boot"}


def goal(diff: dict, levels: int) -> dict:
    """The config's goal for one run − baseline difference: unseen non-inferior everywhere, a seen superclass
    robust gain somewhere."""
    unseen = [diff.get("unseen", {}).get(k, {}).get(str(b)) for k in ("clean", "robust") for b in range(levels)]
    unseen = [d for d in unseen if d]
    seen_gain = [diff.get("seen", {}).get("robust", {}).get(str(b)) for b in range(1, levels)]
    ni = [d["non_inferiority"].split(" ")[0] for d in unseen]
    gain = [d["verdict"] for d in seen_gain if d]
    met = bool(ni) and all(v == "non-inferior" for v in ni) and "higher" in gain
    failed = any(v == "inferior" for v in ni) or (bool(gain) and "higher" not in gain and "lower" in gain)
    return {"verdict": "met" if met else "not met" if failed else "inconclusive",
            "unseen_non_inferior": f"{ni.count('non-inferior')} of {len(ni)}",
            "seen_superclass_robust": gain}


def selection(acc: dict, vs_baseline: dict, baseline: str, levels: int) -> dict:
    """The diagnosis's choice rule, computed: per run ≠ baseline, the mean of its six unseen numbers (clean and
    robust, every level) and whether its seen-leaf robust accuracy is higher than the baseline's (95% interval
    above 0) at some superclass level; ``chosen``: the highest mean among those that are (config order breaks
    ties)."""
    rows = {}
    for run, row in acc.items():
        if run == baseline or "@" in run or "unseen" not in row:
            continue
        vals = [row["unseen"].get(k, {}).get(str(b), {}).get("value") for k in ("clean", "robust")
                for b in range(levels)]
        seen = vs_baseline.get(f"{run} − {baseline}", {}).get("seen", {}).get("robust", {})
        gain = any(seen.get(str(b), {}).get("verdict") == "higher" for b in range(1, levels))
        if all(v is not None for v in vals):
            rows[run] = {"mean_unseen": float(np.mean(vals)), "seen_superclass_gain": gain}
    eligible = {r: v["mean_unseen"] for r, v in rows.items() if v["seen_superclass_gain"]}
    return {"runs": rows, "chosen": max(eligible, key=eligible.get) if eligible else None}


def write_zeroshot(cfg, out: Path, held_out: list[list[str]]) -> dict:
    """Rebuild zeroshot.json and zeroshot.md from the cells that exist (``held_out``: each fold's held-out
    leaves)."""
    from dataclasses import asdict

    from .env import provenance

    out = Path(out)
    results = load_results(out)
    res: dict = {"split": cfg.split, "dataset": cfg.dataset, "tree": cfg.tree, "held_out": held_out,
                 "baseline": cfg.baseline, "rules": asdict(cfg.rules), "folds_done": sorted(results)}
    if results:
        header = next(iter(results.values()))["header"]
        L = header["num_levels"]
        res["levels"] = header["levels"]
        res["eps"], res["attack"] = header["eps"], header["attack"]
        res["seeds"] = {f"fold{i}": {r: len(e) for r, e in f["runs"].items()} for i, f in results.items()}
        acc = accuracies(results, L)
        order = [r for r in cfg.methods if r in acc] + sorted(k for k in acc if k not in cfg.methods)
        res["accuracy"] = {k: acc[k] for k in order}  # the config's order, the readouts last
        runs = [r for r in cfg.methods if r != cfg.baseline]
        pairs = [(r, cfg.baseline) for r in runs]
        res["vs_baseline"] = differences(results, L, pairs, cfg.rules.margin)
        res["goal"] = {p: goal(d, L) for p, d in res["vs_baseline"].items()}
        res["selection"] = selection(res["accuracy"], res["vs_baseline"], cfg.baseline, L)
        res["vs_others"] = differences(results, L, [(r, ref) for ref in cfg.also_compare_to for r in cfg.methods
                                                    if r not in (ref, cfg.baseline)], cfg.rules.margin)
        reads = sorted({f"{r}@{o}" for f in results.values() for r, d in f["readouts"].items() for o in d})
        res["readouts"] = differences(results, L, [(ro, ro.split("@")[0]) for ro in reads], cfg.rules.margin)
        res["readouts_vs_baseline"] = differences(results, L, [(ro, cfg.baseline) for ro in reads], cfg.rules.margin)
        res["per_fold"] = {f"fold{i}": differences({i: results[i]}, L, pairs, cfg.rules.margin)
                           for i in sorted(results)}
        res["movement"] = movement_summary(results)
    res["provenance"] = provenance(asdict(cfg))
    write_json(res, out / "zeroshot.json")
    write_text(to_markdown(res), out / "zeroshot.md")
    return res


def movement_summary(results: dict) -> dict:
    """{run: {level: {group: mean angle (deg), depth trained, depth with the pretrained W_T}}} over folds/seeds."""
    acc: dict = {}
    for fold in results.values():
        for tag, mv in fold["movement"].items():
            run = tag.rpartition("-s")[0]
            for lvl, row in mv.items():
                for g, v in row.items():
                    d = acc.setdefault(run, {}).setdefault(lvl, {}).setdefault(g, {"angle_deg": [], "depth_trained": [],
                                                                                      "depth_pretrained_wt": []})
                    for k in d:
                        d[k].append(v[k])
    return {r: {lvl: {g: {k: float(np.mean(v)) for k, v in d.items()} | {"cells": len(d["angle_deg"])}
                      for g, d in row.items()} for lvl, row in lv.items()} for r, lv in acc.items()}


def _cell(d: dict | None) -> str:
    return fmt_ci(d["value"], d["ci95"]) if d else "—"


def to_markdown(res: dict) -> str:
    L = len(res.get("levels", []))
    lines = [f"# Zero-shot protocol: {res['dataset']} / {res['tree']}, split `{res['split']}`", "",
             "Folds (held-out leaves): " + "; ".join(f"fold {i}: {', '.join(f)}" for i, f in enumerate(res["held_out"]))
             + f". Done: {', '.join(f'fold {i}' for i in res['folds_done']) or 'none'}.", ""]
    if not L:
        return "\n".join(lines + ["No cell is done yet."]) + "\n"
    lines += [f"ε = {res['eps'] * 255:.3g}/255, {res['attack']['type']}; robust Lb = right clean and under the level-b "
              "attack, read at b. Every number: mean over folds of the per-fold mean over seeds and images, % "
              "[95% three-level bootstrap interval over folds, seeds and images].", "",
              f"Rules (fixed before the data): {res['rules']['goal']}; margin {100 * res['rules']['margin']:g} "
              f"point(s), {res['rules']['interval']}.", "", "## Accuracy", ""]
    heads = [f"clean L{b}" for b in range(L)] + [f"robust L{b}" for b in range(L)]
    rows = []
    for name, row in res["accuracy"].items():
        for g in GROUPS:
            r = row.get(g, {})
            rows.append([name, g] + [_cell(r.get("clean", {}).get(str(b))) for b in range(L)]
                        + [_cell(r.get("robust", {}).get(str(b))) for b in range(L)])
    lines += table(["model", "leaves"] + heads, rows) + [""]
    for title, key in ((f"Paired differences to {res['baseline']}", "vs_baseline"),
                       ("Paired differences to the other references (one factor changed)", "vs_others"),
                       ("Readout ablations − the same model read as trained", "readouts"),
                       (f"Readout ablations − {res['baseline']}", "readouts_vs_baseline")):
        if not res.get(key):
            continue
        lines += [f"## {title}", "", "points [95% interval]; verdict on the 95% interval; non-inferiority at the "
                  "margin on the 90% interval.", ""]
        rows = []
        for pair, row in res[key].items():
            for g in GROUPS:
                r = row.get(g, {})
                rows.append([pair, g] + [_diff(r.get(k, {}).get(str(b))) for k in ("clean", "robust")
                                         for b in range(L)])
        lines += table(["difference", "leaves"] + heads, rows) + [""]
    if res.get("goal"):
        lines += ["## The goal", ""] + [f"- {p}: **{v['verdict']}** (unseen non-inferior: {v['unseen_non_inferior']}; "
                                         f"seen superclass robust: {', '.join(v['seen_superclass_robust'])})"
                                         for p, v in res["goal"].items()] + [""]
    sel = res.get("selection") or {}
    if sel.get("runs"):
        lines += ["## Selection (the diagnosis's rule)", "", "Mean of the six unseen numbers; eligible = seen-leaf "
                  "robust accuracy higher than the baseline at some superclass level (95% interval). Chosen: "
                  f"**{sel['chosen']}**.", ""]
        lines += table(["run", "mean unseen", "eligible"], [[r, f"{100 * v['mean_unseen']:.1f}",
                                                              "yes" if v["seen_superclass_gain"] else "no"]
                                                             for r, v in sel["runs"].items()]) + [""]
    if res.get("per_fold"):
        lines += ["## Per fold (unseen leaves)", ""]
        rows = []
        for f, d in res["per_fold"].items():
            for pair, row in d.items():
                r = row.get("unseen", {})
                rows.append([f, pair] + [_diff(r.get(k, {}).get(str(b)), False) for k in ("clean", "robust")
                                         for b in range(L)])
        lines += table(["fold", "difference"] + heads, rows) + [""]
    if res.get("movement"):
        lines += ["## Text movement (trained vs pretrained W_T, same α_T)", "",
                  "Mean over nodes, folds and seeds: angle between the trained and the pretrained W_T·T (degrees), "
                  "hyperbolic depth d(0, ψ) with each.", ""]
        rows = [[r, f"L{lvl}", g, f"{v['angle_deg']:.1f}", f"{v['depth_trained']:.2f}",
                 f"{v['depth_pretrained_wt']:.2f}"]
                for r, lv in res["movement"].items() for lvl, row in lv.items() for g, v in row.items()]
        lines += table(["run", "level", "nodes", "angle (°)", "depth trained", "depth pretrained W_T"], rows) + [""]
    return "\n".join(lines) + "\n"


def _diff(d: dict | None, verdicts: bool = True) -> str:
    if not d:
        return "—"
    s = fmt_ci(d["value"], d["ci95"])
    if not verdicts:
        return s
    tag = {"higher": "↑", "lower": "↓"}.get(d["verdict"], "=")
    ni = d["non_inferiority"]
    return f"{s} {tag}{' NI' if ni.startswith('non-inferior') else ' INF' if ni.startswith('inferior') else ''}" + (
        "*" if "borderline" in ni else "")



def load_results(out: Path) -> dict:
    """{fold index: {"header": a report's header, "runs": {run: [entry per seed]}, "readouts": {run: {readout:
    [entry per seed]}}, "movement": {tag: measures}}} from the cells that exist."""
    res: dict = {}
    for fdir in sorted(Path(out).glob("fold*")):
        if not fdir.name[4:].isdigit():
            continue
        fold: dict = {"header": None, "runs": {}, "readouts": {}, "movement": {}}
        for f in sorted((fdir / "evals").glob("*.json")):
            rep = json.loads(f.read_text())
            name, entry = next(iter(rep["models"].items()))
            tag, _, readout = name.partition("@")
            run, _, seed = tag.rpartition("-s")
            fold["header"] = fold["header"] or {k: v for k, v in rep.items() if k != "models"}
            target = fold["readouts"].setdefault(run, {}).setdefault(readout, {}) if readout else \
                fold["runs"].setdefault(run, {})
            target[int(seed)] = entry
        for f in sorted((fdir / "movement").glob("*.json")):
            fold["movement"][f.stem] = json.loads(f.read_text())
        fold["runs"] = {r: [s[k] for k in sorted(s)] for r, s in fold["runs"].items()}
        fold["readouts"] = {r: {o: [s[k] for k in sorted(s)] for o, s in d.items()}
                            for r, d in fold["readouts"].items()}
        if fold["header"]:
            res[int(fdir.name[4:])] = fold
    return res
