"""report.json, report.md and PNG plots of an evaluation report."""

from __future__ import annotations

from pathlib import Path

from .io import write_json, write_text


def _pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}"


def summary_table(report: dict) -> str:
    """Markdown: per model, clean accuracy and robust accuracy under the same-level attack, per level."""
    L = report["num_levels"]
    head = ["model"] + [f"clean L{b}" for b in range(L)] + [f"robust L{b}" for b in range(L)] + ["TSR(1→0)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in report["models"].items():
        cells = [name] + [_pct(m["clean"][str(b)]) for b in range(L)]
        cells += [_pct(m["robust"].get(str(b), {}).get(str(b))) for b in range(L)]
        tsr = m["transfer_success"].get("1", {}).get("0") if L > 1 else None
        cells.append(_pct(tsr))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _matrix(title: str, mat: dict, L: int) -> str:
    lines = [f"{title}", "", "| attack level a \\ read level b | " + " | ".join(f"L{b}" for b in range(L)) + " |",
             "|---|" + "---|" * L]
    for a, row in mat.items():
        lines.append(f"| L{a} | " + " | ".join(_pct(row.get(str(b))) for b in range(L)) + " |")
    return "\n".join(lines)


def _sweep_rows(report: dict, m: dict) -> list[tuple[float, dict]]:
    """The ε sweep's rows plus the main ε's leaf-attack row, sorted by ε."""
    rows = {float(e): r for e, r in m.get("eps_sweep", {}).items()}
    if "0" in m["robust"]:
        rows.setdefault(float(report["eps"]), m["robust"]["0"])
    return sorted(rows.items())


def to_markdown(report: dict) -> str:
    L = report["num_levels"]
    att = report.get("attack", {})
    eps = report["eps"]
    out = [f"# hirobust report: {report['dataset']}", ""]
    if report.get("note"):
        out += [report["note"], ""]
    out += [f"- tree: `{report.get('tree')}`, {L} levels: "
            + "; ".join(f"L{b} ({len(n)} nodes)" for b, n in enumerate(report.get("levels", []))),
            f"- attack: {att.get('type')} {att.get('norm')}, ε = {eps:.5g} ({eps * 255:.3g}/255), α = "
            f"{att.get('alpha', 0):.3g}, objective {att.get('objective')}, random start, {att.get('precision')}",
            "- robust accuracy counts an image only if it is classified right both clean and attacked; "
            "accuracies in %",
            ""]
    first = next(iter(report["models"].values()), None)
    if first:
        s = first["samples"]
        out += [f"- samples: clean {s['clean']}, attacked {s['robust']} (a fixed seeded subset, the same for every "
                f"model; standard error ≤ {100 * first['standard_error_robust']:.1f} points)", ""]
    out += ["## Summary (robust = attacked at the level it is read at)", "", summary_table(report), ""]
    if report.get("plots"):
        out += [f"![{p}]({p})" for p in report["plots"]] + [""]
    for name, m in report["models"].items():
        out += [f"## {name}", "", _matrix("Robust accuracy (%)", m["robust"], L), "",
                _matrix("Transfer success rate TSR(a→b) (%) — lower is better", m["transfer_success"], L), ""]
        if m.get("eps_sweep"):
            out += ["ε sweep (leaf-level attack), accuracy (%):", "", "| ε | " +
                    " | ".join(f"L{b}" for b in range(L)) + " |", "|---|" + "---|" * L]
            for e, row in _sweep_rows(report, m):
                out.append(f"| {e * 255:.3g}/255{' (main ε, attacked subset)' if e == eps else ''} | "
                           + " | ".join(_pct(row[str(b)]) for b in range(L)) + " |")
            out.append("")
        if len(m.get("attacks", {})) > 1:
            out += ["Robust accuracy by attack (each level attacked at itself), %:", "",
                    "| attack | samples | " + " | ".join(f"L{b}" for b in range(L)) + " |", "|---|---|" + "---|" * L]
            for name, a in m["attacks"].items():
                out.append(f"| {name} | {a['samples']} | "
                           + " | ".join(_pct(a["robust"].get(str(b), {}).get(str(b))) for b in range(L)) + " |")
            out.append("")
        if m.get("hierarchical"):
            out += ["Hierarchical metrics:", "", "| images | mistake severity | consistency (mean) | full-path acc. |",
                    "|---|---|---|---|"]
            for name, h in m["hierarchical"].items():
                sev = h["mistake_severity"]
                out.append(f"| {name} | {'—' if sev != sev else f'{sev:.2f}'} | "
                           f"{_pct(h['consistency'].get('mean'))} | {_pct(h['full_path_accuracy'])} |")
            out.append("")
        failed = [c for c in m.get("checks", []) if not c["passed"]]
        out += [f"Sanity checks: {len(m.get('checks', [])) - len(failed)} passed, {len(failed)} failed"
                + ("".join(f"\n- FAILED: {c}" for c in failed)), ""]
    for title, rows in report.get("ablation", {}).items():
        from .demo import ablation_markdown

        out += [f"## Ablation: {title}", "", "(accuracies and TSR in %, training time in seconds per epoch)", "",
                ablation_markdown(rows), ""]
    if report.get("timing"):
        out += ["## Timing (seconds)", ""] + [f"- {k}: {v:.1f}" for k, v in report["timing"].items()] + [""]
    return "\n".join(out)


def plot(report: dict, out_dir: Path) -> list[str]:
    """PNG plots: accuracy per level per model, TSR heatmaps, ε sweep. Returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    L = report["num_levels"]
    models = list(report["models"])
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(1, len(models))
    for ax, kind in zip(axes, ("clean", "robust")):
        for i, name in enumerate(models):
            m = report["models"][name]
            vals = [m["clean"][str(b)] if kind == "clean" else m["robust"].get(str(b), {}).get(str(b), np.nan)
                    for b in range(L)]
            ax.bar(np.arange(L) + i * width - 0.4 + width / 2, np.array(vals) * 100, width, label=name)
        ax.set_xticks(range(L), [f"L{b}" for b in range(L)])
        ax.set_xlabel("level (0 = leaf)")
        eps = report["eps"] * 255
        ax.set_title("clean accuracy" if kind == "clean" else f"robust accuracy, same-level PGD, ε={eps:.3g}/255")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_per_level.png", dpi=110)
    plt.close(fig)
    files.append("accuracy_per_level.png")

    fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 1, 2.8), squeeze=False)
    for ax, name in zip(axes[0], models):
        t = report["models"][name]["transfer_success"]
        mat = np.array([[t.get(str(a), {}).get(str(b), np.nan) for b in range(L)] for a in range(L)]) * 100
        im = ax.imshow(mat, vmin=0, vmax=100, cmap="viridis")
        for a in range(L):
            for b in range(L):
                ax.text(b, a, "—" if np.isnan(mat[a, b]) else f"{mat[a, b]:.0f}", ha="center", va="center",
                        color="w" if np.nan_to_num(mat[a, b]) < 60 else "k", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(L), [f"L{b}" for b in range(L)])
        ax.set_yticks(range(L), [f"L{a}" for a in range(L)])
        ax.set_xlabel("read level b")
    axes[0][0].set_ylabel("attack level a")
    fig.colorbar(im, ax=axes[0].tolist(), label="TSR (%)", shrink=0.8)
    fig.savefig(out_dir / "transfer_success.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    files.append("transfer_success.png")

    sweeps = {n: m["eps_sweep"] for n, m in report["models"].items() if m.get("eps_sweep")}
    if sweeps:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name in sweeps:
            rows = _sweep_rows(report, report["models"][name])
            ax.plot([e * 255 for e, _ in rows], [r["0"] * 100 for _, r in rows], marker="o", label=name)
        ax.set_xlabel("ε (/255), leaf-level PGD")
        ax.set_ylabel("leaf accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "eps_sweep.png", dpi=110)
        plt.close(fig)
        files.append("eps_sweep.png")
    return files


def write_report(report: dict, out_dir: str | Path, plots: bool = True) -> Path:
    """Write plots, report.md and (last) report.json into ``out_dir``; returns the report.json path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots and report.get("models"):
        report["plots"] = plot(report, out_dir)
    write_text(to_markdown(report), out_dir / "report.md")
    return write_json(report, out_dir / "report.json")
