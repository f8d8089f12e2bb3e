"""A fine-tune's report.md and its training curves (loss.png), from the run's report.json content."""

from __future__ import annotations

from pathlib import Path

from ..io import write_text


def plot_training(history: list[dict], path: Path) -> None:
    """Every loss term and the learning rate against the step (the lr on its own axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history]
    terms = [k for k in history[0] if k.startswith("loss") or k.endswith("_loss")] if history else []
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k in terms:
        ax.plot(steps, [r.get(k, float("nan")) for r in history], lw=1, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if history and "lr" in history[0]:
        lr = ax.twinx()
        lr.plot(steps, [r.get("lr") for r in history], color="grey", lw=1, ls="--", label="learning rate")
        lr.set_ylabel("learning rate (base group)", color="grey")
        lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_finetune_report(report: dict, out: Path) -> Path:
    """``out/report.md``: what was trained, on what, how long, the final losses, and the curves (``loss.png``;
    every step in ``train.csv``)."""
    train = report["train"]
    hist = train.get("history") or []
    cfg = report["config"]
    if hist:
        plot_training(hist, out / "loss.png")
    last = hist[-1] if hist else {}
    lines = [f"# hirobust fine-tune: {report['method']}", "",
             f"Provenance: `{(report.get('provenance') or {}).get('command')}`.", "",
             f"- model: {cfg['model']['name']} from {cfg['model']['pretrained']}; data: {cfg['data']['dataset']}"
             f" (tree {cfg['data'].get('tree') or 'default'}; trained on "
             f"{', '.join(cfg['data']['train_classes']) if cfg['data'].get('train_classes') else 'every class'})",
             f"- {train['steps']} steps of {cfg['train']['batch_size']} images ({train['samples']} training images), "
             f"{cfg['train']['optimizer']} lr {cfg['train']['lr']:g} ({cfg['train']['schedule']}), "
             f"{train['seconds']:.0f} s ({train['images_per_second']:.0f} images/s)",
             "- last step: " + (", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step") or "—"),
             "- every step: `train.csv`" + (" and TensorBoard (`tb/`)" if cfg["train"].get("report_to") ==
                                            "tensorboard" else ""), ""]
    if hist:
        lines += ["![loss.png](loss.png)", ""]
    val = out / "val.csv"
    if val.is_file():  # periodic validation (train.val_every): its last row, every row in val.csv
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(val.read_text())))
        if rows:
            r = rows[-1]
            levels = [k[len("clean "):] for k in r if k.startswith("clean L") and not k.endswith((" lo", " hi"))]
            lines += [f"Validation ({len(rows)} times, `val.csv`), last at step {r['step']} on {r['n']} images of "
                      f"{cfg['train'].get('val_split', 'val')} (PGD-{r['pgd_steps']}, ε = {float(r['eps']) * 255:.3g}"
                      f"/255): " + "; ".join(
                          f"{lv} clean {100 * float(r[f'clean {lv}']):.1f} [{100 * float(r[f'clean {lv} lo']):.1f}, "
                          f"{100 * float(r[f'clean {lv} hi']):.1f}], robust {100 * float(r[f'robust {lv}']):.1f} "
                          f"[{100 * float(r[f'robust {lv} lo']):.1f}, {100 * float(r[f'robust {lv} hi']):.1f}]"
                          for lv in levels), ""]
    return write_text("\n".join(lines) + "\n", out / "report.md")
