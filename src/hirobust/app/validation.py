"""Periodic validation during a fine-tune (``train.val_every`` steps): clean accuracy and a quick PGD
(``train.val_steps`` steps at the method's ε, α = ε/4, random start) at every level of the training tree, on a fixed
seeded subset of ``train.val_samples`` images of ``train.val_split`` (the training classes only: held-out classes
never reach fine-tuning). Written to ``<run>/val.csv`` (one row per validation, with n and each accuracy's 95%
Wilson interval) and, with ``train.report_to=tensorboard``, under ``val/`` in ``<run>/tb/``. It watches the run;
it chooses nothing (no checkpoint is picked on it)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from ..stats import wilson
from ..train_log import write_rows

_log = logging.getLogger("hirobust.finetune")


class Validator:
    """``__call__(step, row)`` is the trainer's callback: every ``val_every`` steps, one validation row."""

    def __init__(self, cfg, method, hier, device, out: Path):
        from .inputs import load_data

        t = cfg.train
        self.every, self.method, self.hier, self.device, self.out = t.val_every, method, hier, device, Path(out)
        data = load_data(cfg.data, t.val_split, method.image_size, progress=False)
        if cfg.data.train_classes is not None:
            data = data.restrict_classes(cfg.data.train_classes)
        if t.val_split == "test" or (cfg.data.dataset == "imagenet" and t.val_split == "val"):
            _log.warning("validation on %s's %s split, its evaluation images: watch it, never choose on it",
                         cfg.data.dataset, t.val_split)
        self.data = data.seeded_subset(t.val_samples, seed=0)
        from .schema import EvalConfig

        eps = getattr(method.cfg, "eps", None)
        self.eval = EvalConfig(eps=eps if isinstance(eps, float) and eps > 0 else EvalConfig().eps,
                               steps=t.val_steps, batch_size=min(t.batch_size, 256), attacks=["pgd"], eps_sweep=[])
        self.rows = _read(self.out / "val.csv")  # a resumed run's earlier validations
        self.tb = None
        if t.report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tb"))

    def __call__(self, step: int, row: dict) -> None:
        if step % self.every:
            return
        from .. import distributed
        from ..evaluate import attacked_predictions, level_labels, predict

        was = self.method.training
        self.method.eval()
        clf = self.method.model
        try:
            pred, y = predict(clf, self.data, self.hier.name, self.eval.batch_size, self.device, progress=False)
            truth = level_labels(self.hier, y)
            right = pred == truth
            out = {"step": step, "n": int(len(y)), "eps": self.eval.eps, "pgd_steps": self.eval.steps}
            for b in range(self.hier.num_levels):
                adv = attacked_predictions(clf, self.data, self.hier, b, self.eval.eps, self.eval, self.device,
                                           f"validate L{b}", progress=False)
                rob = right[:, b] & (adv[:, b] == truth[:, b])
                for name, bits in ((f"clean L{b}", right[:, b]), (f"robust L{b}", rob)):
                    k = int(bits.sum())
                    lo, hi = wilson(k, len(bits))
                    out.update({name: k / max(1, len(bits)), f"{name} lo": lo, f"{name} hi": hi})
        finally:
            self.method.train(was)
        if not distributed.is_main():
            return
        self.rows = [r for r in self.rows if int(r["step"]) < step]  # rows past the checkpoint a kill lost: redone
        self.rows.append(out)
        write_rows(self.out / "val.csv", self.rows)
        if self.tb is not None:
            for k, v in out.items():
                if k.startswith(("clean L", "robust L")) and not k.endswith((" lo", " hi")):
                    self.tb.add_scalar(f"val/{k.replace(' ', '_')}", v, step)
            self.tb.flush()
        _log.info("validation at step %d (%d images): clean L0 %.1f%%, robust L0 %.1f%% (PGD-%d)", step, out["n"],
                  100 * out["clean L0"], 100 * out["robust L0"], self.eval.steps)


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text())))


def chained(*callbacks):
    """One trainer callback calling each of ``callbacks`` (None entries skipped)."""
    cbs = [c for c in callbacks if c is not None]
    if not cbs:
        return None

    def call(step: int, row: dict) -> None:
        for c in cbs:
            c(step, row)
    return call

