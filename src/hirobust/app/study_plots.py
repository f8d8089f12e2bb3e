"""The evidence study's plots: robust accuracy per level with whiskers, a forest plot of paired differences to the
baseline, ε-sweep curves for every model, HiRo's depth diagnostics over training. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _err(s: dict) -> tuple[float, list[float]]:
    v = 100 * s.get("mean", s.get("value", np.nan))
    lo, hi = (100 * x for x in s["ci95"])
    return v, [max(0.0, v - lo) if np.isfinite(lo) else 0.0, max(0.0, hi - v) if np.isfinite(hi) else 0.0]


def plot_study(study: dict, out: Path, loaded: dict) -> list[str]:
    """``loaded``: each part's cells as :func:`hirobust.study_report.load_part` read them (nothing is read again)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report_plots import _save

    files = []
    for pname, part in study["parts"].items():
        L = len(part["levels"])
        runs = list(part["table"])
        fig, ax = plt.subplots(figsize=(7, 3.8))
        w = 0.8 / max(1, len(runs))
        for i, run in enumerate(runs):
            rob = part["table"][run]["robust"]
            xs = [b for b in range(L) if str(b) in rob]
            pts = [_err(rob[str(b)]) for b in xs]
            if pts:
                ax.errorbar(np.array(xs) - 0.4 + w / 2 + i * w, [p[0] for p in pts],
                            yerr=np.array([p[1] for p in pts]).T, fmt="o", ms=4, capsize=2, label=run)
        attacked = [b for b in range(L) if any(str(b) in part["table"][r]["robust"] for r in runs)] or [0]
        ax.set_xticks(attacked, [f"L{b}" for b in attacked])  # a one-node level is never attacked: no empty tick
        ax.set_xlim(min(attacked) - 0.6, max(attacked) + 0.6)
        ax.set_ylabel("robust accuracy (%), 95% interval")
        ax.set_title(f"{pname}: same-level PGD, ε = {part['eps'] * 255:.3g}/255", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        files.append(_put(fig, out, f"{pname}_robust_per_level.png", _save))

        # levels with a paired difference (a one-node level, such as a root, is never attacked: no empty panel)
        have = [b for b in range(L) if any(str(b) in p["robust"] for p in (part.get("paired") or {}).values())]
        if have:
            fig, axes = plt.subplots(1, len(have), figsize=(3.2 * len(have), 0.45 * len(part["paired"]) + 1.6),
                                     sharey=True, squeeze=False)
            names = list(part["paired"])
            for b, ax in zip(have, axes[0]):
                for j, run in enumerate(names):
                    d = part["paired"][run]["robust"].get(str(b))
                    if d:
                        v, e = _err(d)
                        ax.errorbar([v], [j], xerr=np.array([e]).T, fmt="o",
                                    color="C3" if d["verdict"] != "no measurable difference" else "C0", capsize=3)
                ax.axvline(0, color="k", lw=0.8)
                ax.set_title(f"Δ robust L{b} (points)", fontsize=9)
                ax.set_yticks(range(len(names)), names)
                ax.grid(axis="x", alpha=0.3)
            fig.suptitle(f"{pname}: paired difference to the baseline, 95% interval (red: excludes 0)", fontsize=9)
            fig.tight_layout()
            files.append(_put(fig, out, f"{pname}_forest_plot.png", _save))

        sweeps = _sweeps(loaded[pname])
        if sweeps:
            levels = sorted({a for s in sweeps.values() for a in s}, key=int)
            fig, axes = plt.subplots(1, len(levels), figsize=(4.6 * len(levels), 3.4), squeeze=False)
            for ax, a in zip(axes[0], levels):
                for run, s in sweeps.items():
                    rows = sorted(s.get(a, {}).items(), key=lambda kv: float(kv[0]))
                    if rows:
                        ax.plot([float(e) * 255 for e, _ in rows], [100 * r["acc"][a] for _, r in rows], marker="o",
                                ms=3, label=run)
                ax.set_xlabel(f"ε (/255), level-{a} PGD")
                ax.set_ylabel(f"robust accuracy L{a} (%)")
                ax.grid(alpha=0.3)
            axes[0][0].legend(fontsize=7)
            fig.tight_layout()
            files.append(_put(fig, out, f"{pname}_eps_sweep.png", _save))

        hist = _histories(loaded[pname])
        if hist:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
            for tag, h in hist.items():
                for ax, kind in zip(axes, ("text", "img")):
                    for b in range(L):
                        k = f"depth_{kind}_L{b}"
                        if k in h[0]:
                            ax.plot([r["step"] for r in h], [r[k] for r in h], lw=1, label=f"{tag} L{b}")
            for ax, kind in zip(axes, ("text", "image")):
                ax.set_xlabel("step")
                ax.set_ylabel(f"mean {kind} depth d(0, ·)")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=6, ncol=2)
            fig.tight_layout()
            files.append(_put(fig, out, f"{pname}_depth_over_training.png", _save))
    return files


def _put(fig, out: Path, name: str, save) -> str:
    save(fig, out / name)
    return name


def _sweeps(part: dict) -> dict:
    """Seed 0's ε sweep of every run that has one."""
    return {(run if run == "clip" else f"{run}-s0"): entries[0]["eps_sweep_by_level"]
            for run, entries in part["runs"].items() if entries[0].get("eps_sweep_by_level")}


def _histories(part: dict) -> dict:
    """Seed 0's training history of every HiRo run (those that log depths)."""
    return {tag: h for tag, h in part["history"].items() if tag.endswith("-s0") and h and "depth_text_L0" in h[0]}
