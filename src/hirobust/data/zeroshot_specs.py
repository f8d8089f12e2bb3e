"""Deprecated: the zero-shot datasets' facts live in :mod:`hirobust.data.registry` (one ``DatasetSpec`` each); the
torchvision builders in :mod:`hirobust.data.builders`. Kept so that old imports work; import from the registry."""

from .registry import EVAL_IMAGES, ZEROSHOT_DATASETS

__all__ = ["EVAL_IMAGES", "ZEROSHOT_DATASETS"]
