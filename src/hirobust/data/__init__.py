"""Dataset registry: name -> :class:`ZSDataset` (images in [0, 1], leaf labels, class names, templates, trees)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..hierarchy import Forest, load_forest
from .base import ZSDataset, resize
from .synthetic import MIX_PREFIX, make_synthetic, make_synthetic_mix, parse_mix
from .zeroshot_specs import ZEROSHOT_DATASETS

__all__ = ["ZSDataset", "DATASETS", "get_dataset", "dataset_forest", "resize", "make_synthetic",
           "make_synthetic_mix"]


def _fashion_mnist(split: str, root: str | Path | None = None, **_) -> ZSDataset:
    from . import fashion_mnist

    return fashion_mnist.load(split, root)


_SYNTHETIC_KW = ("n_per_class", "branching", "num_levels", "image_size", "noise", "seed")


def _synthetic(split: str, root=None, **kw) -> ZSDataset:
    return make_synthetic(split, **{k: v for k, v in kw.items() if k in _SYNTHETIC_KW})


_MIX_KW = ("n_per_class", "image_size", "noise", "seed")


def _synthetic_mix(mix: float) -> Callable[..., ZSDataset]:
    """Loader of ``synthetic-mix<mix>`` (:func:`make_synthetic_mix`; unknown keyword arguments are ignored)."""

    def loader(split: str = "test", root=None, **kw) -> ZSDataset:
        return make_synthetic_mix(split, mix, **{k: v for k, v in kw.items() if k in _MIX_KW})

    return loader


def _zeroshot(name: str) -> Callable[..., ZSDataset]:
    """Loader of zero-shot evaluation dataset ``name`` (torchvision, imported only when called)."""

    def loader(split: str = "test", root: str | Path | None = None, image_size: int = 224, download: bool = False,
               **kw) -> ZSDataset:
        from . import zeroshot

        return zeroshot.load(name, split, root=root, image_size=image_size, download=download, **kw)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    return loader


DATASETS: dict[str, Callable[..., ZSDataset]] = {
    "fashion-mnist": _fashion_mnist,
    "synthetic": _synthetic,
    "synthetic-unlabelled": lambda split, root=None, **kw: make_synthetic(
        split, unlabelled=True, **{k: v for k, v in kw.items() if k in _SYNTHETIC_KW}),
    # the 15 zero-shot evaluation datasets of METHOD.md §5 (hirobust.data.zeroshot; availability: zeroshot.available)
    **{name: _zeroshot(name) for name in ZEROSHOT_DATASETS},
}


def get_dataset(name: str, split: str = "test", root: str | Path | None = None, **kwargs) -> ZSDataset:
    """Load dataset ``name``'s ``split``; unknown names raise ``ValueError`` listing the known ones.

    Besides :data:`DATASETS`, ``synthetic-mix<m>`` (e.g. ``synthetic-mix0``, ``synthetic-mix0.5``) is the control
    dataset of :func:`make_synthetic_mix` with ``mix = m``; a malformed or out-of-range ``m`` raises ``ValueError``.
    """
    from ..schema import CLIP_BENCHMARK_ALIASES, canonical_dataset

    name = canonical_dataset(name)
    mix = parse_mix(name)  # synthetic-mix<m>, m in [0, 1]: any m, so not listed in DATASETS
    if mix is not None:
        return _synthetic_mix(mix)(split, root=root, **kwargs)
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known: {known}, {MIX_PREFIX}<m> (m in [0, 1]); CLIP_benchmark's "
                         f"names {', '.join(CLIP_BENCHMARK_ALIASES)} also work")
    return DATASETS[name](split, root=root, **kwargs)


def dataset_forest(ds: ZSDataset, trees: list[str] | None = None, hierarchy: str | Path | dict | None = None) -> Forest:
    """The dataset's trees (or those of ``hierarchy``), checked to cover exactly its classes."""
    return load_forest(hierarchy if hierarchy is not None else ds.hierarchy, trees=trees, classes=ds.classnames,
                       also=ds.held_out)
