"""study.md: the evidence study's tables, paired differences, findings and mechanism, in Markdown."""

from __future__ import annotations

from ..stats import fmt_ci
from .markdown import table_lines


def _cell(s: dict | None) -> str:
    if not s:
        return "—"
    return fmt_ci(s.get("mean", s.get("value")), s.get("ci95"))


def _diff(d: dict | None) -> str:
    if not d:
        return "—"
    dec = d.get("decision", d.get("verdict"))
    mark = " *" if dec in ("higher", "lower") else " (borderline)" if str(dec).startswith("borderline") else ""
    p = d.get("p_mcnemar_per_seed")
    return fmt_ci(d["value"], d["ci95"]) + mark + (" (p " + "/".join(f"{x:.2g}" for x in p) + ")" if p else "")


def _table(part: dict, key: str = "table") -> list[str]:
    L = len(part["levels"])
    head = ["run", "interval over"] + [f"clean L{b}" for b in range(L)] + [f"robust L{b}" for b in range(L)] + \
        [f"TSR({a}→0)" for a in range(1, L)]
    rows = []
    for run, row in part[key].items():
        first = next(iter(row["robust"].values()), None) or next(iter(row["clean"].values()), {})
        over = f"{row['seeds']} seeds × images" if row["seeds"] > 1 else "images (1 seed)"
        cells = [run, over if "interval" in first else str(row["seeds"])] + \
            [_cell(row["clean"].get(str(b))) for b in range(L)]
        cells += [_cell(row["robust"].get(str(b))) for b in range(L)]
        cells += [_cell(row["tsr_to_leaf"].get(str(a))) for a in range(1, L)]
        rows.append(cells)
    return table_lines(head, rows)


def _paired(paired: dict, L: int, base: str, clean: bool = True) -> list[str]:
    matched = clean and any(row.get("tsr_matched") for row in paired.values())
    head = [f"run − {base}", "seeds"] + ([f"Δclean L{b}" for b in range(L)] if clean else []) + \
        [f"Δrobust L{b}" for b in range(L)] + ([f"ΔTSR({a}→0) own" for a in range(1, L)] if clean else []) + \
        ([f"ΔTSR({a}→0) matched" for a in range(1, L)] + [f"Δrobust L0 under L{a} attack" for a in range(1, L)]
         if matched else [])
    rows = []
    for run, row in paired.items():
        cells = [run, str(row["seeds"])]
        if clean:
            cells += [_diff(row["clean"].get(str(b))) for b in range(L)]
        cells += [_diff(row["robust"].get(str(b))) for b in range(L)]
        if clean:
            cells += [_diff(row["tsr_to_leaf"].get(str(a))) for a in range(1, L)]
        if matched:
            cells += [_diff(row.get("tsr_matched", {}).get(str(a))) for a in range(1, L)]
            cells += [_diff(row.get("robust_leaf_under", {}).get(str(a))) for a in range(1, L)]
        rows.append(cells)
    note = ["", "ΔTSR own: each model's TSR over its own clean-right images (different denominators); matched: over "
            "the images both models get right clean (the same denominator: what the verdicts read); Δrobust L0 under "
            "La attack: leaf accuracy under the level-a attack, no conditioning."] if matched else []
    return table_lines(head, rows) + note


def _mechanism(mech: dict, L: int) -> list[str]:
    head = ["run", "seeds"] + [f"text depth L{b}" for b in range(L)] + [f"image depth L{b}" for b in range(L)] + \
        ["gap_label active", "τ", "α_I", "α_T", "δ_T/‖w‖", "text parents shallower", "image parents shallower"]
    rows = []
    f = lambda m, k: "—" if k not in m else f"{m[k][0]:.3g} → {m[k][1]:.3g}"  # noqa: E731
    for run, m in mech.items():
        cells = [run, str(m["seeds"])] + [f(m, f"depth_text_L{b}") for b in range(L)]
        cells += [f(m, f"depth_img_L{b}") for b in range(L)]
        cells += [f(m, k) for k in ("gap_label_active", "tau", "alpha_img", "alpha_txt")]
        d = m.get("delta_t_rel")
        cells += ["—" if d is None else f"{d[0]:.2g} → {d[1]:.2g}", str(m["text_parents_shallower"]),
                  str(m["img_parents_shallower"])]
        rows.append(cells)
    return ["Each cell: first step → end of training (mean of the last tenth of the steps), mean over seeds.", "",
            *table_lines(head, rows)]


def _findings(rules: dict) -> list[str]:
    """The verdict table, one column per dated rule version, then the current version's evidence per finding."""
    versions = list(rules)
    names = list(dict.fromkeys(k for v in rules.values() for k in v))
    out = ["## The paper's findings", "", "Each verdict is applied mechanically by the rules in the study's config "
           "(`rules:`; a changed rule is a new dated version, every version shown).", "",
           "| finding | " + " | ".join(versions) + " |", "|---|" + "---|" * len(versions)]
    for n in names:
        out.append(f"| {n} | " + " | ".join(rules[v].get(n, {}).get("verdict", "—") for v in versions) + " |")
    cur = rules[versions[-1]]
    out += ["", f"Rule {versions[-1]}, what decided each verdict (values in points; 95% / 90% interval; distance of "
            f"the deciding bound in Monte Carlo errors):", ""]
    for n, v in cur.items():
        out.append(f"- **{n}**: {v.get('hypothesis', '')} → **{v['verdict']}**")
        for e in v.get("evidence", []):
            ci90 = e.get("ci90") or [float("nan")] * 2
            out.append(f"  - {e['stat']}{' ' + e['run'] if e['run'] else ''} L{e['level']} {e['test']}: "
                       f"{fmt_ci(e['value'], e['ci95'])} (90% [{100 * ci90[0]:.2f}, {100 * ci90[1]:.2f}]), "
                       f"{e['decided_by']}, {e['mc_distance']:.0f} MC errors → {e['outcome']}")
    if len(versions) > 1:
        out += ["", "Rule v1 as first coded: " + "; ".join(f"{k}: {v['rule']}" for k, v in rules[versions[0]].items())
                + "."]
    return out + [""]


def to_markdown(study: dict, cfg) -> str:
    base = cfg.baseline
    prov = study.get("provenance") or {}
    g = prov.get("git") or {}
    out = ["# hirobust evidence study", "",
           f"Provenance of this analysis: `{prov.get('command')}`; code {str(g.get('commit'))[:10]}"
           f"{' with uncommitted changes' if g.get('dirty') else ''}; {prov.get('versions')}; config digest "
           f"{prov.get('config_digest')}. Each cell's own provenance is in its file.", "",
           f"Compute so far: {study['compute_seconds'] / 60:.1f} min over {len(study['timing'])} cells "
           f"(timing.json). Accuracies in %; every interval is a 95% percentile bootstrap (B = 10,000) that "
           f"resamples the training seeds and the images together where a run has several seeds, the images alone "
           f"where it has one (the \"interval over\" column says which). Differences are seed-matched and paired "
           f"on the same images (the same two-level bootstrap); * marks an interval that excludes 0 with its "
           f"deciding bound at least 2 Monte Carlo standard errors from 0, (borderline) one within 2; anything else "
           f"is \"no measurable difference\"; (p ...) are the exact McNemar p-values of each seed's pair.", ""]
    if study.get("tune"):
        t = study["tune"]
        out += [f"HiRo tuned on the {t['split']} split ({t['samples']} images; criterion: {t['criterion']}): chose "
                f"`{t['choice']}` = {t['options']}; scores " +
                ", ".join(f"{k} {100 * v:.1f}" for k, v in t["scores"].items()) + ".", ""]
    if study.get("rules"):
        out += _findings(study["rules"])
    for pname, part in study["parts"].items():
        L = len(part["levels"])
        out += [f"## Part `{pname}`: {part['dataset']}, tree `{part['tree']}`", "",
                "Levels: " + "; ".join(f"L{b}: {', '.join(n)}" for b, n in enumerate(part["levels"])) + ".", ""]
        if part.get("chance"):
            out += ["Chance (uniform / majority): " + "; ".join(
                f"L{b} {100 * c['uniform']:.1f} / {100 * c['majority']:.1f}" for b, c in part["chance"].items()), ""]
        at = part["attack"]
        out += [f"Attack: {at['type']} {at['norm']}, ε = {part['eps'] * 255:.3g}/255; robust Lb = the level-b attack "
                f"read at level b (right clean and attacked).", ""] + _table(part) + [""]
        if part.get("table_cw"):
            out += ["CW (margin loss), same images:", ""] + _table(part, "table_cw") + [""]
        if part.get("paired"):
            out += [f"Paired differences to `{base}` (points):", ""] + _paired(part["paired"], L, base) + [""]
        if part.get("forest_vs_single"):
            out += ["Forest minus single tree:", ""] + _paired({"forest": part["forest_vs_single"]}, L, "single") + [""]
        p = part.get("premise", {})
        if p.get("a"):
            out += [f"Premise for `{base}`: TSR(b→b) − TSR(0→0) (finding a): " + "; ".join(
                f"L{b} {_diff(d)}" for b, d in p["a"].items()) + ". TSR(a→0) − TSR(0→0)/2 (finding b): " + "; ".join(
                f"L{b} {_diff(d)}" for b, d in p["b"].items()) + ".", ""]
        if part.get("unseen_table"):
            out += ["Seen / unseen leaves (seed 0; robust under the same-level PGD):", "",
                    "| run | leaves | n | " + " | ".join(f"robust L{b}" for b in range(L)) + " |",
                    "|---|---|---|" + "---|" * L]
            for run, g in part["unseen_table"].items():
                for name in ("seen", "unseen"):
                    pg = g[name]["attacks"].get("pgd", {})
                    out.append(f"| {run} | {name} | {pg.get('n', '—')} | " + " | ".join(
                        fmt_ci(pg.get("robust", {}).get(str(b), {}).get(str(b)),
                               pg.get("robust_ci95", {}).get(str(b), {}).get(str(b))) for b in range(L)) + " |")
            only = {b: n for b, n in part.get("unseen_only_nodes", {}).items() if n}
            out += ["", "Superclasses with only unseen leaves: " + (str(only) if only else "none") + ".", ""]
            if part.get("unseen_paired"):
                out += [f"Unseen leaves only, paired differences to `{base}`:", ""] + \
                    _paired(part["unseen_paired"], L, base, clean=False) + [""]
            if part.get("unseen_vs_clip"):
                out += ["Unseen leaves only, paired differences to the pretrained `clip` (finding e):", ""] + \
                    _paired(part["unseen_vs_clip"], L, "clip", clean=False) + [""]
        if part.get("autoattack"):
            out += [f"AutoAttack ({cfg.autoattack.version}), level-a attack read at a:", ""]
            for tag, a in part["autoattack"].items():
                out.append(f"- {tag} (n = {a['n']}): " + "; ".join(
                    f"L{k} {fmt_ci(v[k], a['robust_ci95'][k][k])}" for k, v in a["robust"].items()))
            pairs = {t: a["vs_pgd"] for t, a in part["autoattack"].items() if a.get("vs_pgd")}
            if pairs:
                out += ["", "AutoAttack − PGD on the same images (AutoAttack's lie inside PGD's), robust accuracy in "
                        "points; PGD-only = images PGD broke and AutoAttack did not, AA-only = the reverse:", ""]
                for tag, v in pairs.items():
                    out.append(f"- {tag}: " + "; ".join(
                        f"L{k} {fmt_ci(d['diff'], d['ci95'])} (PGD-only {d['a_only']}, AA-only {d['b_only']})"
                        for k, d in v.items()))
            out.append("")
        if part.get("mechanism"):
            out += ["HiRo's mechanism (depth = hyperbolic distance from the origin):", ""] + \
                _mechanism(part["mechanism"], L) + [""]
    if study.get("knob"):
        runs = sorted({r for k in study["knob"] for r in k["paired_L1"]})
        out += ["## The synthetic control against its knob (level 1)", "",
                "| part | coherence L1 | baseline robust L1 | TSR(1→1) − TSR(0→0) | " +
                " | ".join(f"{r} − {base} robust L1" for r in runs) + " |", "|---|---|---|---|" + "---|" * len(runs)]
        for k in study["knob"]:
            out.append(f"| {k['part']} | {k['coherence_L1']:.2f} | {_cell(k['baseline_robust_L1'])} | "
                       f"{_diff(k['premise_a_L1'])} | " + " | ".join(_diff(k["paired_L1"].get(r)) for r in runs) + " |")
        out.append("")
    if study.get("knob_slope"):
        out += ["## The knob's slope (the pre-registered test of \"grows with the knob\")", "",
                f"Least-squares slope of (run − {base}) same-level robust accuracy against the level's measured visual "
                f"coherence, over the parts of one shared pretrained model (points per unit of coherence; 95% "
                f"interval from resampling each part's seeds and images; below 0: the gain grows as the "
                f"superclasses stop being visual):", ""]
        for run, levels in study["knob_slope"].items():
            for b, d in levels.items():
                pts = ", ".join(f"{x:.2f}: {100 * y:+.1f}" for x, y in zip(d["x"], d["y"]))
                out.append(f"- {run} L{b}: {_diff(d)} ({d['decision']}); (coherence: gain) {pts}")
        out.append("")
    out += [f"![{p}]({p})" for p in study.get("plots", [])]
    return "\n".join(out) + "\n"
