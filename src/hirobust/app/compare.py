"""``hirobust compare``: one paper-style table from several evaluation reports (Markdown and CSV).

Rows are models; columns are clean accuracy per level, robust accuracy per level (each level attacked at
itself) under the main attack and under every other attack evaluated (CW, AutoAttack, and the per-image worst
case over them), and TSR(1→0), each with its 95% interval. With several datasets the numbers are averaged over the
datasets that have the level, one table per threat model (ε, norm, attack: never averaged together);
each dataset also gets its own table, and, where the reports hold per-image results, the paired difference
of every model to a baseline on the same images (clean and robust accuracy: bootstrap interval, exact McNemar
p; TSR(a→0): bootstrap interval) in compare.md and compare.json. Models evaluated separately (one report each)
are paired when their reports attacked the same images under the same threat (:func:`pairing_key`, and the
same per-image labels).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..errors import ConfigError, NotFound
from ..io import write_json, write_text
from ..stats import fmt_ci, paired_difference, paired_tsr_difference, verdict
from .markdown import group_table
from .markdown import table as md_table


def load_reports(paths: list[str | Path]) -> list[dict]:
    out = []
    for p in paths:
        p = Path(p)
        f = p / "report.json" if p.is_dir() else p
        if not f.is_file():
            raise NotFound(f"no report.json in {str(p)!r}; pass evaluation run directories or report files")
        try:
            rep = json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{str(f)!r} is damaged (not valid JSON: {e}); evaluate again") from None
        models = rep.get("models") if isinstance(rep, dict) else None
        if not isinstance(models, dict) or not models or not all(
                isinstance(m, dict) and isinstance(m.get("robust"), dict) and isinstance(m.get("clean"), dict)
                for m in models.values()):
            raise ConfigError(f"{str(f)!r} is not an evaluation report (no models with clean and robust accuracy); "
                             f"give the output of `hirobust evaluate` or `hirobust demo`")
        if not isinstance(rep.get("num_levels"), int) or not isinstance(rep.get("dataset"), str):
            raise ConfigError(f"{str(f)!r} is damaged (no num_levels or dataset); evaluate again")
        if "robust" not in next(iter(rep["models"].values())):
            raise ConfigError(f"{str(f)!r} is not an evaluation report (no models with robust accuracy); "
                             f"give the output of `hirobust evaluate` or `hirobust demo`")
        rep["_path"] = str(f)
        out.append(rep)
    return out


def _identity(name: str, m: dict) -> str:
    """What makes two entries the same model: its name and its source (a run directory, or name + weights); a
    model with random weights (no pretrained source) is never the same as another."""
    src = m.get("source")
    if isinstance(src, dict) and not src.get("pretrained"):
        return json.dumps([name, id(m)])
    return json.dumps([name, src], sort_keys=True, default=str)


_ATTACK_ORDER = ("pgd", "cw", "autoattack", "worst")


def _main_attack(report: dict) -> str:
    return ((report.get("attack") or {}).get("attacks") or ["pgd"])[0]


def threat(report: dict) -> str:
    """The threat model a report's robust numbers answer: ε, norm and the main attack (averages never mix two)."""
    att = report.get("attack") or {}
    eps = report.get("eps")
    return (f"ε = {eps * 255:.3g}/255" if isinstance(eps, (int, float)) else "ε = ?") + \
        f" {att.get('norm', 'linf')}, {att.get('type', _main_attack(report))}"


def _cols(reports: list[dict]) -> list[str]:
    """clean and (main-attack) robust per level, then every other attack evaluated (CW, AutoAttack, the per-image
    worst case over them) per level, then TSR(1→0)."""
    max_levels = max(r["num_levels"] for r in reports)
    others = {a for r in reports for m in r["models"].values() for a in (m.get("attacks") or {})
              if a != _main_attack(r)}
    if any("worst_case" in m for r in reports for m in r["models"].values()):
        others.add("worst")
    extra = [f"{a} L{b}" for a in sorted(others, key=lambda a: (_ATTACK_ORDER + (a,)).index(a))
             for b in range(max_levels)]
    return [f"clean L{b}" for b in range(max_levels)] + [f"robust L{b}" for b in range(max_levels)] + extra + \
        ["TSR(1→0)"]


def _values(r: dict, m: dict, b: int) -> dict[str, tuple]:
    """Column -> (value, images, 95% interval) of model entry ``m`` at level ``b`` of report ``r``."""
    n = m.get("n") or {}
    out = {f"clean L{b}": (m["clean"].get(str(b)), n.get("clean"), (m.get("clean_ci95") or {}).get(str(b)))}
    main = _main_attack(r)
    if str(b) in m["robust"]:
        out[f"robust L{b}"] = (m["robust"][str(b)].get(str(b)), ((m.get("attacks") or {}).get(main) or {}).get(
            "samples", n.get("robust")), ((m.get("robust_ci95") or {}).get(str(b)) or {}).get(str(b)))
    entries = {a: e for a, e in (m.get("attacks") or {}).items() if a != main}
    if m.get("worst_case"):
        entries["worst"] = m["worst_case"]
    for a, e in entries.items():
        if str(b) in (e.get("robust") or {}):
            out[f"{a} L{b}"] = (e["robust"][str(b)].get(str(b)), e.get("samples"),
                                ((e.get("robust_ci95") or {}).get(str(b)) or {}).get(str(b)))
    return out


def _mean(vals: list[tuple]) -> tuple[float | None, list | None]:
    """The mean of per-dataset accuracies with its 95% interval over the images (each dataset's binomial variance
    p(1-p)/n, datasets fixed); one dataset keeps its own interval; None where an n is unknown."""
    vals = [v for v in vals if isinstance(v[0], (int, float)) and math.isfinite(v[0])]
    if not vals:
        return None, None
    mean = sum(v[0] for v in vals) / len(vals)
    if len(vals) == 1:
        return mean, vals[0][2]
    if not all(isinstance(v[1], int) and v[1] > 0 for v in vals):
        return mean, None
    half = 1.96 * math.sqrt(sum(p * (1 - p) / k for p, k, _ in vals)) / len(vals)
    return mean, [max(0.0, mean - half), min(1.0, mean + half)]


def rows(reports: list[dict]) -> tuple[list[str], list[dict]]:
    """(column names, one dict per model): each column averaged over the datasets that have it, with their count
    (``"<column> n"``) and a 95% interval (``"<column> ci95"``). A level with one node (trivially right, e.g.
    PCAM's root) is left out; the same model (name and source) met again on a dataset counts once; another model
    under a used name gets the report's folder."""
    cols = _cols(reports)
    models: dict[str, dict[str, list[tuple]]] = {}
    datasets: dict[str, set] = {}
    ident: dict[str, str] = {}
    for r in reports:
        trivial = {b for b, nodes in enumerate(r.get("levels") or []) if len(nodes) == 1}
        for name, m in r["models"].items():
            if name in ident and ident[name] != _identity(name, m):  # another model under a used name
                name = _suffixed(name, r)
            ident.setdefault(name, _identity(name, m))
            if r["dataset"] in datasets.get(name, ()):  # the same model on the same dataset again: once
                continue
            datasets.setdefault(name, set()).add(r["dataset"])
            acc = models.setdefault(name, {c: [] for c in cols})
            for b in range(r["num_levels"]):
                if b not in trivial:
                    for c, v in _values(r, m, b).items():
                        acc[c].append(v)
            if r["num_levels"] > 1 and "1" in m.get("transfer_success", {}):
                acc["TSR(1→0)"].append((m["transfer_success"]["1"].get("0"),
                                        ((m.get("transfer_success_n") or {}).get("1") or {}).get("0"),
                                        ((m.get("transfer_success_ci95") or {}).get("1") or {}).get("0")))
    table = []
    for name, acc in models.items():
        row = {"model": name, "datasets": len(datasets[name])}
        for c, v in acc.items():  # an undefined value (null, NaN) is left out of the average, not spread into it
            row[c], row[f"{c} ci95"] = _mean(v)
            row[f"{c} n"] = sum(1 for x in v if isinstance(x[0], (int, float)) and math.isfinite(x[0]))
        table.append(row)
    return cols, table


def paired_rows(report: dict, baseline: str | None = None, seed: int = 0, group: str | None = None
                ) -> tuple[str | None, list[dict]]:
    """(baseline, per model the paired differences to the baseline on the same images): clean accuracy and
    robust accuracy under each same-level attack of the report's main attack, per level, with the paired
    bootstrap interval, the exact McNemar p and the verdict. Needs the report's per-image results. ``group``
    (``seen`` / ``unseen``): only the images of those leaves (the classes a run was fine-tuned on, or not)."""
    from ..records import correct

    models = {n: m for n, m in report["models"].items() if m.get("per_image")}
    if len(models) < 2:
        return None, []
    base = baseline if baseline is not None else ("tecoa" if "tecoa" in models else next(iter(models)))
    if base not in models:
        raise ConfigError(f"--baseline {base!r} is not a model of {report.get('_path', 'the report')}; "
                         f"models: {', '.join(models)}")
    from ..records import subset_of

    attack = report.get("attack", {}).get("attacks", ["pgd"])[0]
    L = report["num_levels"]
    keep = _group_mask(report, models[base], group)
    out = []
    for name, m in models.items():
        if name == base:
            continue
        row = {"model": name, "baseline": base, "clean": {}, "robust": {}, "tsr_to_leaf": {}, "leaves": group or "all"}
        for b in range(L):
            ca, cb = subset_of(m, "clean")[1][str(b)], subset_of(models[base], "clean")[1][str(b)]
            row["clean"][str(b)] = _with_verdict(paired_difference(ca[keep("clean")], cb[keep("clean")], seed=seed))
            if str(b) in m["per_image"]["attacks"].get(attack, {}).get("levels", {}):
                sub = m["per_image"]["attacks"][attack]["subset"]
                ra, rb = correct(m, attack, b, b), correct(models[base], attack, b, b)
                row["robust"][str(b)] = _with_verdict(paired_difference(ra[keep(sub)], rb[keep(sub)], seed=seed))
        if group is not None:
            out.append(row)
            continue
        for a in range(1, L):  # TSR(a→0): of the images right at the leaf, the share a level-a attack turns wrong
            if all(str(a) in e["per_image"]["attacks"].get(attack, {}).get("levels", {}) for e in (m, models[base])):
                d = paired_tsr_difference(*_tsr_bits(m, attack, a), *_tsr_bits(models[base], attack, a), seed=seed)
                row["tsr_to_leaf"][str(a)] = _with_verdict({"diff": d["value"], "ci95": d["ci95"], "n": d["n"]})
        out.append(row)
    return base, out


def _group_mask(report: dict, entry: dict, group: str | None):
    """``subset name -> bool mask`` over that per-image subset: every image, or those of the seen / unseen leaves
    (``entry["by_class_group"]``, the classes its run was fine-tuned on)."""
    import numpy as np

    from ..records import subset_of

    if group is None:
        return lambda sub: slice(None)
    unseen = set(entry["by_class_group"]["unseen_classes"])
    ids = [i for i, n in enumerate(report["levels"][0]) if n in unseen]

    def mask(sub: str):
        u = np.isin(subset_of(entry, sub)[0].numpy(), ids)
        return u if group == "unseen" else ~u
    return mask


# what decides which images a report attacked and how: reports that agree on these (and whose per-image labels
# agree) evaluated the same images under the same threat, so their models can be paired image by image
_SAME_IMAGES = ("eps", "steps", "alpha", "norm", "robust_samples", "clean_samples", "seed")


def pairing_key(report: dict) -> str:
    ec = report.get("eval_config", {})
    main_attack = report.get("attack", {}).get("attacks", ["pgd"])[:1]
    return json.dumps([report["dataset"], report.get("split"), report.get("tree"), main_attack,
                       *[ec.get(k) for k in _SAME_IMAGES]])


def merged(reports: list[dict]) -> tuple[dict | None, str]:
    """One report holding the models of ``reports`` (same :func:`pairing_key`) when their per-image subsets hold
    the same labels, so that :func:`paired_rows` pairs models evaluated separately; a model name met again is
    suffixed with its report's folder. (None, why) when the subsets differ."""
    out = {**reports[0], "models": {}, "_path": ", ".join(r["_path"] for r in reports)}
    seen: dict[str, tuple] = {}
    for r in reports:
        for name, m in r["models"].items():
            for sub in ("clean", "robust"):
                rec = m.get("per_image", {}).get(sub)
                if rec is None:
                    continue
                fp = (rec["n"], rec["labels"])
                if seen.setdefault(sub, fp) != fp:
                    return None, (f"their {sub} subsets hold different images ({r['_path']}), so they are not "
                                  f"paired")
            key = name if name not in out["models"] else _suffixed(name, r)
            out["models"][key] = m
    return out, ""


def _suffixed(name: str, report: dict) -> str:
    """A model name met again in another report: suffixed with that report's folder."""
    return f"{name}@{Path(report['_path']).parent.name}"


def _tsr_bits(entry: dict, attack: str, a: int) -> tuple:
    """(right at the leaf when clean, right at the leaf after the level-``a`` attack) on the attack's images."""
    from ..records import correct, subset_of

    subset = entry["per_image"]["attacks"][attack]["subset"]
    return subset_of(entry, subset)[1]["0"], correct(entry, attack, a, 0)


def _with_verdict(d: dict) -> dict:
    return {**d, "verdict": verdict(d["ci95"])}


def paired_markdown(report: dict, base: str, prows: list[dict]) -> str:
    """Markdown of :func:`paired_rows`: Δ in points [95% interval] (p McNemar); * marks an interval without 0."""
    L = report["num_levels"]
    head = (["model − " + base] + [f"Δclean L{b}" for b in range(L)] + [f"Δrobust L{b}" for b in range(L)]
            + [f"ΔTSR({a}→0)" for a in range(1, L)])
    cell = lambda d: "—" if d is None else (fmt_ci(d["diff"], d["ci95"])  # noqa: E731
                                            + (f" p={d['p_mcnemar']:.2g}" if "p_mcnemar" in d else "")
                                            + (" *" if d["verdict"] in ("higher", "lower") else ""))
    return md_table(head, [[r["model"]] + [cell(r["clean"].get(str(b))) for b in range(L)]
                           + [cell(r["robust"].get(str(b))) for b in range(L)]
                           + [cell(r.get("tsr_to_leaf", {}).get(str(a))) for a in range(1, L)] for r in prows])


def markdown(cols: list[str], table: list[dict], title: str) -> str:
    """The table: each cell the accuracy with its 95% interval; a cell averaged over fewer datasets than its row
    has says over how many ("61.2 [58.0, 64.3] (3 of 15)")."""
    cols = [c for c in cols if any(r.get(c) is not None for r in table)]  # an attack no model ran: no column

    def cell(r, c):
        if r[c] is None:
            return "—"
        n, ci = r.get(f"{c} n", r["datasets"]), r.get(f"{c} ci95")
        return (f"{100 * r[c]:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
                + (f" ({n} of {r['datasets']})" if n != r["datasets"] else ""))
    rows = [[r["model"], str(r["datasets"])] + [cell(r, c) for c in cols] for r in table]
    return f"### {title}\n\n" + md_table(["model", "datasets", *cols], rows) + "\n"


def to_csv(cols: list[str], table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "datasets"] + [x for c in cols for x in (c, f"{c} ci95 lo", f"{c} ci95 hi", f"{c} n")])
    for r in table:
        cells = []
        for c in cols:
            ci = r.get(f"{c} ci95") or ["", ""]
            cells += ["" if r[c] is None else f"{r[c]:.6f}", *(f"{x:.6f}" if x != "" else "" for x in ci),
                      r.get(f"{c} n", "")]
        w.writerow([r["model"], r["datasets"]] + cells)
    return buf.getvalue()


def _sizes(report: dict) -> str:
    """How many images each kind of number of a report rests on."""
    m = next(iter(report["models"].values()))
    n = m.get("n") or {}
    parts = [f"clean {n['clean']:,}"] if isinstance(n.get("clean"), int) else []
    for a, e in (m.get("attacks") or {}).items():
        if isinstance(e.get("samples"), int):
            parts.append(f"{a} {e['samples']:,}")
    return ("images per model: " + ", ".join(parts) + "; ") if parts else ""


def compare(paths: list[str | Path], out: str | Path, baseline: str | None = None) -> str:
    reports = load_reports(paths)
    trees: dict[str, set] = {}
    for r in reports:
        trees.setdefault(r["dataset"], set()).add(r.get("tree"))
    mixed = {d: t for d, t in trees.items() if len(t) > 1}
    if mixed:
        d, t = next(iter(mixed.items()))
        raise ConfigError(f"the reports evaluate {d} with different trees ({', '.join(sorted(map(str, t)))}): their "
                         f"levels are different questions; compare the reports of each tree apart")
    partial = {r["dataset"] for r in reports if r.get("partial")}
    by_threat: dict[str, list[dict]] = {}
    for r in reports:
        by_threat.setdefault(threat(r), []).append(r)
    md = ["# hirobust comparison\n"]
    if len(by_threat) > 1:
        md.append(f"**{len(by_threat)} threat models** among these reports ({'; '.join(by_threat)}): each has its own "
                  f"table; their numbers are never averaged together.\n")
    tables = {}
    for th, group in by_threat.items():
        names = sorted({r["dataset"] for r in group})
        datasets = [f"{d} (tree {next(iter(trees[d]))}{', PARTIAL' if d in partial else ''})" for d in names]
        cols, table = rows(group)
        tables[th] = (cols, table)
        if len(group) > 1:  # one report: its own table below is the whole story
            md.append(markdown(cols, table, f"Mean over {len(names)} dataset(s) ({', '.join(datasets)}), {th}") +
                      "Accuracies and TSR in %; each cell is the mean over the datasets that have that column "
                      "(one-node levels left out) with its 95% interval over the images (each dataset's binomial "
                      "variance; the datasets fixed); one dataset keeps its own interval.\n")
    paired = {}
    groups: dict[str, list[dict]] = {}
    for r in reports:
        groups.setdefault(pairing_key(r), []).append(r)
    for group in groups.values():
        for r in group:
            c, t = rows([r])
            md.append(markdown(c, t, f"{r['dataset']}, tree `{r.get('tree')}` ({r['_path']}), {threat(r)}")
                      + _sizes(r) + "95% Wilson intervals.\n")
        both, why = merged(group) if len(group) > 1 else (group[0], "")
        if both is None:
            md.append(f"Reports {', '.join(r['_path'] for r in group)} are not paired: {why}.\n")
            continue
        base, prows = paired_rows(both, baseline)
        if prows:
            where = "" if len(group) == 1 else f" (models of {len(group)} reports on the same images)"
            md.append(f"Paired differences to `{base}` on the same images{where}, in points, with the 95% "
                      f"paired-bootstrap interval and the exact McNemar p; * = the interval excludes 0 (otherwise: "
                      f"no measurable difference):\n\n" + paired_markdown(both, base, prows) + "\n")
            paired[both["_path"]] = {"reports": [r["_path"] for r in group], "baseline": base, "rows": prows}
            if all(m.get("by_class_group") for m in both["models"].values()):  # held-out classes: seen / unseen too
                md.append("Seen and unseen leaves (each model's fine-tuning classes):\n\n" + group_table(both) + "\n")
                for g in ("seen", "unseen"):
                    _, grows = paired_rows(both, baseline, group=g)
                    md.append(f"Paired differences to `{base}` on the **{g}** leaves' images:\n\n"
                              + paired_markdown(both, base, grows) + "\n")
                    paired[both["_path"]][f"rows_{g}"] = grows
    text = "\n".join(md)
    out = Path(out)
    write_json({"paired_differences": paired}, out / "compare.json")
    write_text("".join(f"# {th}\n" * (len(tables) > 1) + to_csv(*ct) for th, ct in tables.items()),
               out / "compare.csv")
    write_text(text, out / "compare.md")
    return text
