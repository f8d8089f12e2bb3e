"""The report's figures: accuracy per level (with chance lines), TSR heatmaps on one colour scale, seen and held-out
leaves, the ε sweep from ε = 0. Each figure was looked at after its last change."""

from __future__ import annotations

from pathlib import Path

from .markdown import get as _get


def _errbars(vals, cis):
    import numpy as np

    v = np.array([np.nan if x is None else x for x in vals], dtype=float) * 100
    lo = np.array([np.nan if c is None else c[0] for c in cis], dtype=float) * 100
    hi = np.array([np.nan if c is None else c[1] for c in cis], dtype=float) * 100
    return v, np.clip(np.nan_to_num(np.stack([v - lo, hi - v]), nan=0.0), 0.0, None)


def _zoom(ax, lows, highs, pad=2.0):
    import numpy as np

    lo, hi = np.nanmin(lows), np.nanmax(highs)
    if np.isfinite(lo) and np.isfinite(hi):
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))


def plot(report: dict, out_dir: Path) -> list[str]:
    """PNG plots: accuracy per level per model with interval whiskers (axes zoomed to the data), one TSR heatmap
    per model with its own colour scale, and the ε sweep of every model with the table's metric. Returns names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    L = report["num_levels"]
    models = list(report["models"])
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)  # clean and robust on one y-range
    width = 0.8 / max(1, len(models))
    for ax in axes:  # the majority node's share per level: the line a level must clear to be read at all
        for b, c in (report.get("chance") or {}).items():
            ax.hlines(100 * c["majority"], int(b) - 0.45, int(b) + 0.45, colors="grey", linestyles="dashed", lw=1,
                      label="chance (majority)" if b == "0" else None)
    lows, highs = [100 * c["majority"] for c in (report.get("chance") or {}).values()], []
    for ax, kind in zip(axes, ("clean", "robust")):
        for i, name in enumerate(models):
            m = report["models"][name]
            if kind == "clean":
                vals = [m["clean"][str(b)] for b in range(L)]
                cis = [_get(m, "clean_ci95", str(b)) for b in range(L)]
            else:
                vals = [_get(m, "robust", str(b), str(b)) for b in range(L)]
                cis = [_get(m, "robust_ci95", str(b), str(b)) for b in range(L)]
            v, err = _errbars(vals, cis)
            ax.errorbar(np.arange(L) + i * width - 0.4 + width / 2, v, yerr=err, fmt="o", ms=4, capsize=2, label=name)
            lows.append(np.nanmin(v - err[0]) if np.isfinite(v).any() else np.nan)
            highs.append(np.nanmax(v + err[1]) if np.isfinite(v).any() else np.nan)
        ax.set_xticks(range(L), [f"L{b}" for b in range(L)])
        ax.set_xlabel("level (0 = leaf)")
        eps = report["eps"] * 255
        ax.set_title("clean accuracy" if kind == "clean" else f"robust accuracy, same-level attack, ε={eps:.3g}/255",
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%), 95% interval")
    _zoom(axes[0], lows, highs or lows)  # one range for both panels (shared y)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, out_dir / "accuracy_per_level.png")
    files.append("accuracy_per_level.png")

    fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 1.6, 3.0), squeeze=False)
    mats = {}
    for name in models:  # one colour scale for every panel: the same colour is the same rate
        t = report["models"][name]["transfer_success"]
        mats[name] = np.array([[np.nan if _get(t, str(a), str(b)) is None else _get(t, str(a), str(b))
                                for b in range(L)] for a in range(L)], dtype=float) * 100
    vmax = max([np.nanmax(m) for m in mats.values() if np.isfinite(m).any()] + [1.0])
    for ax, name in zip(axes[0], models):
        mat = mats[name]
        im = ax.imshow(mat, vmin=0, vmax=vmax, cmap="viridis_r")  # dark = high transfer (bad)
        for a in range(L):
            for b in range(L):
                ax.text(b, a, "—" if np.isnan(mat[a, b]) else f"{mat[a, b]:.0f}", ha="center", va="center",
                        color="k" if np.nan_to_num(mat[a, b]) < 0.5 * vmax else "w", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(L), [f"L{b}" for b in range(L)])
        ax.set_yticks(range(L), [f"L{a}" for a in range(L)])
        ax.set_xlabel("read level b")
    axes[0][0].set_ylabel("attack level a")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="TSR (%), lower is better")
    _save(fig, out_dir / "transfer_success.png", tight=True)
    files.append("transfer_success.png")

    grouped = {n: m["by_class_group"] for n, m in report["models"].items() if m.get("by_class_group")}
    if grouped:  # the zero-shot axis: leaves the models were fine-tuned on (filled) and held-out ones (hollow)
        attack = report.get("attack", {}).get("attacks", ["pgd"])[0]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        width = 0.8 / max(1, len(grouped))
        for ax, kind in zip(axes, ("clean", "robust")):
            for i, (name, g) in enumerate(grouped.items()):
                for group, fill in (("seen", True), ("unseen", False)):
                    e = g[group] if kind == "clean" else g[group]["attacks"].get(attack, {})
                    vals = [_get(e, kind, str(b)) if kind == "clean" else _get(e, "robust", str(b), str(b))
                            for b in range(L)]
                    cis = [_get(e, f"{kind}_ci95", str(b)) if kind == "clean" else
                           _get(e, "robust_ci95", str(b), str(b)) for b in range(L)]
                    v, err = _errbars(vals, cis)
                    x = np.arange(L) + i * width - 0.4 + width / 2 + (0.06 if not fill else -0.06) * width
                    ax.errorbar(x, v, yerr=err, fmt="o", ms=5, capsize=2, color=f"C{i}",
                                mfc=f"C{i}" if fill else "white", label=f"{name}, {group}")
            ax.set_xticks(range(L), [f"L{b}" for b in range(L)])
            ax.set_xlabel("level (0 = leaf)")
            ax.set_title(f"{kind} accuracy, seen (filled) and held-out (hollow) leaves", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("accuracy (%), 95% interval")
        axes[1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        _save(fig, out_dir / "seen_unseen.png")
        files.append("seen_unseen.png")

    sweeps = {n: m["eps_sweep_by_level"] for n, m in report["models"].items() if m.get("eps_sweep_by_level")}
    if sweeps:
        levels = sorted({a for sw in sweeps.values() for a in sw}, key=int)
        fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 3.6), squeeze=False)
        span = max(float(e) * 255 for sw in sweeps.values() for lv in sw.values() for e in lv) or 1.0
        for ax, a in zip(axes[0], levels):
            for i, (name, sw) in enumerate(sweeps.items()):
                rows = sorted(sw.get(a, {}).items(), key=lambda kv: float(kv[0]))
                if not rows:
                    continue
                zero = _sweep_clean(report["models"][name], a)  # ε = 0: the sweep images' clean accuracy
                if zero is not None:
                    rows = [("0", zero)] + rows
                v, err = _errbars([r["acc"][a] for _, r in rows], [r["ci95"][a] for _, r in rows])
                dodge = (i - (len(sweeps) - 1) / 2) * 0.012 * span  # models side by side at each measured ε
                ax.errorbar([float(e) * 255 + dodge for e, _ in rows], v, yerr=err, marker="o", ms=4, capsize=2,
                            ls="none", label=name)  # measured points only: nothing is drawn between them
            ax.set_xlabel(f"ε (/255), level-{a} attack")
            ax.set_ylabel(f"robust accuracy at L{a} (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        _save(fig, out_dir / "eps_sweep.png")
        files.append("eps_sweep.png")
    return files


def _sweep_clean(entry: dict, level: str) -> dict | None:
    """{"acc": {level: clean accuracy}, "ci95": {...}} of the ε sweep's images (its ε = 0 point), from the per-image
    record; None when the report has none."""
    from ..stats import accuracy, unpack_bits

    sw = (entry.get("per_image") or {}).get("sweep")
    if not sw or str(level) not in sw.get("right", {}):
        return None
    a = accuracy(unpack_bits(sw["right"][str(level)], sw["n"]))
    return {"acc": {str(level): a["value"]}, "ci95": {str(level): a["ci95"]}}


def _save(fig, path: Path, tight: bool = False) -> None:
    """Save a figure atomically (a temp file renamed into place)."""
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    extra = {"bbox_inches": "tight"} if tight else {}
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", **extra))
    plt.close(fig)
