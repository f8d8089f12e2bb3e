"""One command per paper row: fine-tune, then evaluate zero-shot on every dataset present."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .evaluation import evaluate_datasets
from .finetune import finetune
from .inputs import resolve_pretrained
from .schema import ReproduceConfig


def reproduce(cfg: ReproduceConfig, progress: bool = True, resume: bool = False, overwrite: bool = False) -> dict:
    """One command per paper row: fine-tune, then evaluate zero-shot on every dataset present. Every requested
    dataset is checked before the fine-tune (present, complete, checksums): what will be skipped, and why, is
    known before hours of training; none usable is an error."""
    from ..data.registry import ZEROSHOT_DATASETS
    from .evaluation import check_datasets

    names = ZEROSHOT_DATASETS if cfg.evaluate.datasets in ("all", ["all"]) else cfg.evaluate.datasets
    unusable = check_datasets(list(names), dataclasses.replace(cfg.finetune.data, tree=None, trees=None))
    if all(unusable.values()):
        from ..errors import ConfigError

        first = next(iter(unusable.items()))
        raise ConfigError(f"none of the {len(unusable)} datasets to evaluate is usable (e.g. {first[0]}: "
                          f"{first[1]}); fix evaluate.datasets or the data under data.root before fine-tuning")
    run = finetune(cfg.finetune, progress=progress, resume=resume, overwrite=overwrite)
    models: dict = {cfg.finetune.method: str(run)}
    if cfg.evaluate.include_clip:
        models = {"clip": {"name": cfg.finetune.model.name,
                           "pretrained": resolve_pretrained(cfg.finetune.model, progress)}, **models}
    base = dataclasses.replace(cfg.finetune.data, tree=None, trees=None)
    return evaluate_datasets(models, cfg.evaluate.datasets, base, cfg.evaluate.eval, Path(cfg.finetune.out) / "eval",
                             cfg.finetune.device, progress, resume=resume)
