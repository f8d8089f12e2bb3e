"""report.json, report.md and PNG plots of an evaluation report."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..io import write_json, write_text
from ..stats import fmt_ci
from .markdown import get as _get
from .markdown import group_table, table, table_lines
from .report_plots import plot


def _pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}"


def summary_table(report: dict) -> str:
    """Markdown: per model, clean accuracy and robust accuracy under the same-level attack, per level, each with
    its 95% Wilson interval."""
    L = report["num_levels"]
    head = ["model"] + [f"clean L{b}" for b in range(L)] + [f"robust L{b}" for b in range(L)] + ["TSR(1→0)"]
    rows = []
    for name, m in report["models"].items():
        cells = [name] + [fmt_ci(m["clean"][str(b)], _get(m, "clean_ci95", str(b))) for b in range(L)]
        cells += [fmt_ci(_get(m, "robust", str(b), str(b)), _get(m, "robust_ci95", str(b), str(b))) for b in range(L)]
        tsr = _get(m, "transfer_success", "1", "0") if L > 1 else None
        cells.append(fmt_ci(tsr, _get(m, "transfer_success_ci95", "1", "0")))
        rows.append(cells)
    return table(head, rows)


def _matrix(title: str, mat: dict, L: int) -> str:
    head = ["attack level a \\ read level b"] + [f"L{b}" for b in range(L)]
    rows = [[f"L{a}"] + [_pct(row.get(str(b))) for b in range(L)] for a, row in mat.items()]
    return "\n".join([f"{title}", "", table(head, rows)])


def to_markdown(report: dict) -> str:
    L = report["num_levels"]
    att = report.get("attack", {})
    eps = report["eps"]
    out = [f"# hirobust report: {report['dataset']}", ""]
    prov = report.get("provenance")
    if prov:
        g = prov.get("git") or {}
        out += ["Provenance: `" + str(prov.get("command")) + "`; code " +
                (f"{g['commit'][:10]}{' with uncommitted changes' if g.get('dirty') else ''}" if g.get("commit")
                 else "not from a git checkout") + "; " +
                ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items()) + f"; device {prov.get('device')}; "
                f"seeds {prov.get('seeds')}; config digest {prov.get('config_digest')}.", ""]
    if report.get("note"):
        out += [report["note"], ""]
    if report.get("partial"):
        out += [f"**Partial dataset** (data.allow_partial): {report['partial']}. These numbers are not the "
                f"dataset's.", ""]
    if report.get("damaged"):
        d = report["damaged"]
        out += [f"**{len(d)} damaged image(s) left out** (they do not decode; data.max_damaged): "
                + ", ".join(f"`{x}`" for x in d[:5]) + (f" and {len(d) - 5} more (run.log)" if len(d) > 5 else ""), ""]
    out += [f"- tree: `{report.get('tree')}`, {L} levels: "
            + "; ".join(f"L{b} ({len(n)} nodes)" for b, n in enumerate(report.get("levels", []))),
            f"- attack: {att.get('type')} {att.get('norm')}, ε = {eps:.5g} ({eps * 255:.3g}/255), α = "
            f"{att.get('alpha', 0):.3g}, objective {att.get('objective')}, random start, {att.get('precision')}",
            f"- {report.get('robust_definition', 'robust: right both clean and attacked')}.",
            *([f"- AutoAttack that ran: {att['autoattack']}"] if att.get("autoattack") else []),
            "- accuracies in %, each with its 95% Wilson interval [lo, hi]; n per subset below",
            ""]
    if report.get("chance"):
        out += ["- chance per level (uniform guess / majority node): " + "; ".join(
            f"L{b} {100 * c['uniform']:.1f} / {100 * c['majority']:.1f}" for b, c in report["chance"].items()), ""]
    first = next(iter(report["models"].values()), None)
    if first:
        s = first["samples"]
        out += [f"- samples: clean n = {s['clean']}, attacked n = {s['robust']} (a fixed seeded subset, the same for "
                f"every model)" + "".join(f", {k} n = {v}" for k, v in first.get("n", {}).items()
                                           if k not in ("clean", "robust", "pgd", "cw")), ""]
    out += ["## Summary (robust = attacked at the level it is read at)", "", summary_table(report), ""]
    flags = [(n, b, why) for n, m in report["models"].items() for b, why in (m.get("chance_flags") or {}).items()]
    if flags:
        out += ["**Levels that cannot be trusted** (clean accuracy not above chance; their robust numbers say "
                "nothing):", ""] + [f"- {n}, L{b}: {why}" for n, b, why in flags] + [""]
    from .compare import paired_markdown, paired_rows

    base, prows = paired_rows(report)
    if prows:
        out += [f"## Paired differences to `{base}` (same images)", "",
                "Points; 95% paired-bootstrap interval; exact McNemar p (accuracies); ΔTSR(a→0): the change in the "
                "share of leaf-right images that a level-a attack turns wrong (lower: less transfer); * = the interval "
                "excludes 0, otherwise no measurable difference. One training seed: this says nothing about "
                "seed-to-seed variation (`hirobust study` runs several).", "", paired_markdown(report, base, prows), ""]
    groups = group_table(report)
    if groups:
        out += ["## Seen and unseen leaves", "", groups, ""]
    if report.get("plots"):
        out += [f"![{p}]({p})" for p in report["plots"]] + [""]
    for name, m in report["models"].items():
        out += [f"## {name}", "", _matrix("Robust accuracy (%)", m["robust"], L), "",
                _matrix("Transfer success rate TSR(a→b) (%) — lower is better", m["transfer_success"], L), ""]
        for a_lvl, rows in (m.get("eps_sweep_by_level") or {}).items():
            out += [f"ε sweep, level-{a_lvl} {att.get('type', 'PGD')} attack, robust accuracy (%), n = "
                    f"{m.get('n', {}).get('sweep', '?')}:", ""]
            out += table_lines(["ε"] + [f"L{b}" for b in range(L)],
                               [[f"{float(e) * 255:.3g}/255"] + [fmt_ci(r["acc"][str(b)], r["ci95"][str(b)])
                                                                 for b in range(L)]
                                for e, r in sorted(rows.items(), key=lambda kv: float(kv[0]))])
            out.append("")
        if len(m.get("attacks", {})) > 1:
            worst = m.get("worst_case")
            rows = [(aname, a) for aname, a in m["attacks"].items()]
            if worst:
                rows.append((f"worst case ({' + '.join(worst['attacks'])}, per image)", worst))
            out += ["Robust accuracy by attack (each level attacked at itself), %; the worst case counts an image "
                    "robust only if it survives every attack of the ensemble (RobustBench's rule):", ""]
            out += table_lines(["attack", "n"] + [f"L{b}" for b in range(L)],
                               [[aname, str(a["samples"])] + [fmt_ci(_get(a, "robust", str(b), str(b)),
                                                                     _get(a, "robust_ci95", str(b), str(b)))
                                                              for b in range(L)] for aname, a in rows])
            out.append("")
        if m.get("hierarchical"):
            out += ["Hierarchical metrics:", ""]
            out += table_lines(["images", "mistake severity", "consistency (mean)", "full-path acc."],
                               [[name, "—" if h["mistake_severity"] != h["mistake_severity"]
                                 else f"{h['mistake_severity']:.2f}", _pct(h["consistency"].get("mean")),
                                 _pct(h["full_path_accuracy"])] for name, h in m["hierarchical"].items()])
            out.append("")
        failed = [c for c in m.get("checks", []) if not c["passed"]]
        names: dict[str, list[int]] = {}
        for c in m.get("checks", []):
            names.setdefault(c["check"], [0, 0])[0 if c["passed"] else 1] += 1
        out += [f"Sanity checks: {len(m.get('checks', [])) - len(failed)} passed, {len(failed)} failed ("
                + "; ".join(f"{n}: {p} passed" + (f", {f} FAILED" if f else "") for n, (p, f) in names.items()) + ")"
                + ("".join(f"\n- FAILED: {c}" for c in failed)), ""]
    for title, rows in report.get("ablation", {}).items():
        out += [f"## Ablation: {title}", "", "(accuracies and TSR in %, training time in seconds per epoch)", "",
                ablation_markdown(rows), ""]
    if report.get("timing"):
        out += ["## Timing (seconds)", ""] + [f"- {k}: {v:.1f}" for k, v in report["timing"].items()] + [""]
    return "\n".join(out)


def ablation_rows(report: dict, names: list[str], train_seconds: dict, epochs: float) -> list[dict]:
    """One row per run: clean leaf accuracy, leaf PGD, superclass PGD (each level attacked at itself),
    TSR(1→0), and training seconds per epoch."""
    rows = []
    for n in names:
        if n not in report["models"]:
            raise ConfigError(f"ablation table names run {n!r}, which is not among the runs {list(report['models'])}")
        m = report["models"][n]
        L = report["num_levels"]
        rows.append({"run": n, "clean_leaf": m["clean"]["0"], "leaf_pgd": m["robust"]["0"]["0"],
                     **{f"L{b}_pgd": m["robust"][str(b)][str(b)] for b in range(1, L)},
                     "tsr_1_0": m["transfer_success"]["1"]["0"] if L > 1 else None,
                     "train_seconds_per_epoch": train_seconds.get(n, float("nan")) / epochs})
    return rows


def ablation_markdown(rows: list[dict]) -> str:
    """Markdown of :func:`ablation_rows`: accuracies and TSR in %, training time in seconds per epoch."""
    keys = [k for k in rows[0] if k != "run"]
    fmt = lambda k, v: f"{v:.1f}" if k.startswith("train") else f"{100 * v:.1f}"  # noqa: E731
    return table(["run", *keys], [[r["run"]] + [fmt(k, r[k]) for k in keys] for r in rows])


def clip_benchmark_results(report: dict) -> dict[str, dict]:
    """One result per model in CLIP_benchmark's JSON shape (``clip_benchmark eval`` writes the same keys, so its
    result-collection scripts read these), named by CLIP_benchmark's default output template
    ``{dataset}_{pretrained}_{model}_{language}_{task}.json``: ``pretrained`` is the checkpoint's file name (a
    fine-tuned run's weights file) or the tag, as CLIP_benchmark's ``--pretrained`` slug is; where two models of one
    report would get the same name, their full checkpoint paths are used (CLIP_benchmark's ``{pretrained_full_path}``).
    ``metrics.acc1`` is the clean leaf accuracy over the whole evaluated split; CLIP_benchmark's ``acc5`` and
    ``mean_per_class_recall`` are not computed and are absent. hirobust's robust leaf accuracy comes under
    ``hirobust`` with the clean accuracy of the same attacked subset beside it (``robust_clean_acc1``), so the two
    can be compared: robust never exceeds its own subset's clean accuracy."""
    import re

    from ..data.registry import CLIP_BENCHMARK_NAME

    dataset = CLIP_BENCHMARK_NAME.get(report["dataset"], report["dataset"]).replace("/", "_")
    slug = lambda t: re.sub(r"[^A-Za-z0-9._+-]+", "_", str(t))  # noqa: E731
    entries = []
    for name, m in report.get("models", {}).items():
        src = m.get("source")
        if isinstance(src, dict):
            arch, pretrained = src.get("name"), src.get("pretrained")
        else:
            arch, pretrained = _run_model(src), str(Path(str(src)) / "model" / "open_clip_model.safetensors")
        pretrained = pretrained if pretrained else "random"
        short = Path(pretrained).name if Path(pretrained).is_file() or isinstance(src, str) else pretrained
        leaf = lambda d: (d.get("0") or {}).get("0") if isinstance(d.get("0"), dict) else d.get("0")  # noqa: E731
        extra = {"model_name": name, "n": m.get("n", {}).get("clean"), "acc1_ci95": m.get("clean_ci95", {}).get("0"),
                 "robust_acc1": leaf(m.get("robust", {})), "robust_acc1_ci95": leaf(m.get("robust_ci95", {})),
                 "robust_clean_acc1": (m.get("clean_on_robust_subset") or {}).get("0"),
                 "robust_n": m.get("n", {}).get("robust"), "eps": report.get("eps"),
                 "attack": report.get("attack", {}).get("type"), "tree": report.get("tree")}
        result = {"dataset": dataset, "model": arch, "pretrained": pretrained, "task": "zeroshot_classification",
                  "metrics": {"acc1": m.get("clean", {}).get("0")}, "language": "en", "hirobust": extra}
        entries.append((short, pretrained, arch, result))
    names = [f"{dataset}_{slug(short)}_{slug(arch)}_en_zeroshot_classification.json" for short, _, arch, _ in entries]
    out = {}
    for (_, full, arch, result), fname in zip(entries, names):
        if names.count(fname) > 1:
            fname = f"{dataset}_{slug(full.replace('/', '_'))}_{slug(arch)}_en_zeroshot_classification.json"
        out[fname] = result
    return out


def _run_model(run_dir) -> str | None:
    """The architecture a fine-tuned run directory holds (its hirobust.json), or None when unreadable."""
    import json

    try:
        return json.loads((Path(run_dir) / "hirobust.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def write_report(report: dict, out_dir: str | Path, plots: bool = True) -> Path:
    """Write plots, report.md and report.json into ``out_dir``; returns the report.json path.

    Everything is written into a staging folder first; only when all of it exists are the files moved into place
    (report.json last), so a failure while writing (a full disk, a plotting error) leaves the previous complete
    report untouched and never a mix of two runs."""
    import os
    import shutil
    import tempfile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    try:
        if plots and report.get("models"):
            report["plots"] = plot(report, stage)
        write_text(to_markdown(report), stage / "report.md")
        cb = clip_benchmark_results(report)
        (stage / "clip_benchmark").mkdir()
        for name, result in cb.items():
            write_json(result, stage / "clip_benchmark" / name)
        write_json(report, stage / "report.json")
        (out_dir / "clip_benchmark").mkdir(exist_ok=True)
        for f in [*report.get("plots", []), *(f"clip_benchmark/{n}" for n in cb), "report.md", "report.json"]:
            os.replace(stage / f, out_dir / f)
        for old in (out_dir / "clip_benchmark").glob("*.json"):  # a model no longer in the report: its result goes
            if old.name not in cb:
                old.unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out_dir / "report.json"
