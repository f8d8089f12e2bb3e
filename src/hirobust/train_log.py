"""Training logs researchers already read: ``<run>/train.csv`` (one row per step: every loss term the method
returns, the learning rate, HiRo's depths, τ and α) always, and TensorBoard event files in ``<run>/tb/`` with
``train.report_to=tensorboard`` (as open_clip_train does). Both are written from the history the checkpoint keeps,
so a resumed run's logs continue where its checkpoint left off."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .io import write_text


def write_csv(run_dir: str | Path, history: list[dict]) -> Path:
    """``history`` (one dict per step) as ``run_dir/train.csv``, atomically."""
    return write_rows(Path(run_dir) / "train.csv", history)


def write_rows(path: str | Path, rows: list[dict], first: str = "step") -> Path:
    """``rows`` as a CSV at ``path``, atomically; the columns in first-seen order, ``first`` leading."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    cols = [first] + [c for c in cols if c != first]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    w.writerows(rows)
    return write_text(buf.getvalue(), path)


class TensorBoardLog:
    """Scalars of every history row not written yet, under ``train/<name>``, at its step."""

    def __init__(self, run_dir: str | Path, first_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
        self.last = first_step

    def add(self, history: list[dict]) -> None:
        for row in history:
            if row["step"] > self.last:
                for k, v in row.items():
                    if k != "step":
                        self.writer.add_scalar(f"train/{k}", v, row["step"])
                self.last = row["step"]
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
