"""Datasets by name: :func:`get_dataset` -> :class:`ZSDataset` (images in [0, 1], leaf labels, class names,
templates, trees). Each dataset's facts live in :mod:`.registry` (one :class:`~.registry.DatasetSpec` each).

Importing this package loads no torch: the registry is torch-free, and the torch-using names (``ZSDataset``,
``resize``, ``make_synthetic``, ...) are imported on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .registry import (
    CLIP_BENCHMARK_ALIASES,
    DATASETS,
    SPECS,
    ZEROSHOT_DATASETS,
    DatasetSpec,
    available,
    canonical_dataset,
)

if TYPE_CHECKING:
    from ..hierarchy import Forest
    from .base import ZSDataset

__all__ = ["ZSDataset", "DATASETS", "SPECS", "DatasetSpec", "ZEROSHOT_DATASETS", "available", "get_dataset",
           "dataset_forest", "resize", "make_synthetic", "make_synthetic_mix"]

_LAZY = {"ZSDataset": "base", "resize": "base", "make_synthetic": "synthetic", "make_synthetic_mix": "synthetic"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MIX_KW = ("n_per_class", "image_size", "noise", "seed")


def get_dataset(name: str, split: str = "test", root: str | Path | None = None, **kwargs) -> ZSDataset:
    """Load dataset ``name``'s ``split``; unknown names raise ``ValueError`` listing the known ones.

    Besides :data:`DATASETS`, ``synthetic-mix<m>`` (e.g. ``synthetic-mix0``, ``synthetic-mix0.5``) is the control
    dataset of :func:`make_synthetic_mix` with ``mix = m`` (unknown keyword arguments are ignored); a malformed or
    out-of-range ``m`` raises ``ValueError``. CLIP_benchmark's spelling of a name works too.
    """
    from .synthetic import MIX_PREFIX, make_synthetic_mix, parse_mix

    name = canonical_dataset(name)
    from .folder import is_folder_name, make_folder_dataset
    from .synthetic import KNOB_NAME, make_synthetic_knob

    if is_folder_name(name):  # any labelled image folder (data/folder.py)
        return make_folder_dataset(name, split, **{k: v for k, v in kwargs.items() if k in ("image_size",
                                                                                          "num_workers")})

    if name == KNOB_NAME:  # the knob control with one tree per knob value (docs/synthetic.md)
        return make_synthetic_knob(split, **{k: v for k, v in kwargs.items() if k in ("n_per_class", "image_size",
                                                                                      "seed")})
    mix = parse_mix(name)  # synthetic-mix<m>, m in [0, 1]: any m, so not listed in DATASETS
    if mix is not None:
        return make_synthetic_mix(split, mix, **{k: v for k, v in kwargs.items() if k in _MIX_KW})
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        from ..errors import did_you_mean

        raise ConfigError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; known: {known}, {MIX_PREFIX}<m> "
                         f"(m in [0, 1]); CLIP_benchmark's names {', '.join(CLIP_BENCHMARK_ALIASES)} also work")
    return DATASETS[name](split, root=root, **kwargs)


def dataset_forest(ds: ZSDataset, trees: list[str] | None = None, hierarchy: str | Path | dict | None = None) -> Forest:
    """The dataset's trees (or those of ``hierarchy``), checked to cover exactly its classes."""
    from ..hierarchy import load_forest

    return load_forest(hierarchy if hierarchy is not None else ds.hierarchy, trees=trees, classes=ds.classnames,
                       also=ds.held_out)
