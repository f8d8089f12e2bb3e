"""The torchvision builders of the zero-shot datasets, one per dataset (named by :mod:`hirobust.data.registry`).

Each ``build(root, split_arg, download, transform, ours)`` returns ``(torch Dataset, labels)`` with labels read from
what torchvision keeps in memory, and checks torchvision's class list against ``ours`` (our class names in label
order, given by the caller) where it exposes one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError


def _check_names(name: str, theirs: Sequence[str], ours: Sequence[str],
                 clean: Callable[[str], str] = lambda s: s) -> None:
    ours = list(ours)
    theirs = [clean(c) for c in theirs]
    if theirs != ours:
        diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        raise ConfigError(f"{name}: torchvision's classes differ from ours at label {diff} "
                         f"({theirs[diff:diff + 1]} vs {ours[diff:diff + 1]}; {len(theirs)} vs {len(ours)} classes); "
                         f"the data on disk is not the expected version")


def _space(s: str) -> str:
    return s.replace("_", " ").replace("/", " ")


def cifar(cls_name: str, name: str):
    def build(root: Path, train: bool, download: bool, tf, ours: Sequence[str]):
        import torchvision.datasets as D

        ds = getattr(D, cls_name)(str(root), train=train, transform=tf, download=download)
        _check_names(name, ds.classes, ours, _space)
        return ds, list(ds.targets)
    return build


def stl10(root, split, download, tf, ours):
    from torchvision.datasets import STL10

    ds = STL10(str(root), split=split, transform=tf, download=download)
    _check_names("stl10", ds.classes, ours)
    return ds, [int(v) for v in ds.labels]


def caltech101(root, _, download, tf, ours):
    from torchvision.datasets import Caltech101

    ds = Caltech101(str(root), target_type="category", transform=tf, download=download)
    if len(ds.categories) != len(ours):
        raise ConfigError(f"caltech101: {len(ds.categories)} category folders, expected 101")
    return ds, list(ds.y)


def caltech256(root, _, download, tf, ours):
    from torchvision.datasets import Caltech256

    ds = Caltech256(str(root), transform=tf, download=download)
    if len(ds.categories) != len(ours):
        raise ConfigError(f"caltech256: {len(ds.categories)} category folders, expected 257")
    return ds, list(ds.y)


def oxford_pets(root, split, download, tf, ours):
    from torchvision.datasets import OxfordIIITPet

    ds = OxfordIIITPet(str(root), split=split, target_types="category", transform=tf, download=download)
    return ds, list(ds._labels)


def flowers102(root, split, download, tf, ours):
    from torchvision.datasets import Flowers102

    ds = Flowers102(str(root), split=split, transform=tf, download=download)
    return ds, list(ds._labels)  # 0-based in every torchvision that has the class


def fgvc_aircraft(root, split, download, tf, ours):
    from torchvision.datasets import FGVCAircraft

    ds = FGVCAircraft(str(root), split=split, annotation_level="variant", transform=tf, download=download)
    _check_names("fgvc-aircraft", ds.classes, ours)
    return ds, list(ds._labels)


def stanford_cars(root, split, _download, tf, ours):
    from torchvision.datasets import StanfordCars

    ds = StanfordCars(str(root), split=split, transform=tf, download=False)
    _check_names("stanford-cars", ds.classes, ours)
    return ds, [t for _, t in ds._samples]


def sun397(root, _, download, tf, ours):
    from torchvision.datasets import SUN397

    ds = SUN397(str(root), transform=tf, download=download)
    _check_names("sun397", ds.classes, ours, _space)
    return ds, list(ds._labels)


def food101(root, split, download, tf, ours):
    from torchvision.datasets import Food101

    ds = Food101(str(root), split=split, transform=tf, download=download)
    _check_names("food101", ds.classes, ours, _space)
    return ds, list(ds._labels)


def eurosat(root, _, download, tf, ours):
    from torchvision.datasets import EuroSAT

    ds = EuroSAT(str(root), transform=tf, download=download)
    if len(ds.classes) != len(ours):
        raise ConfigError(f"eurosat: {len(ds.classes)} class folders, expected 10")
    return ds, list(ds.targets)


def dtd(root, split, download, tf, ours):
    from torchvision.datasets import DTD

    ds = DTD(str(root), split=split, partition=1, transform=tf, download=download)
    _check_names("dtd", ds.classes, ours)
    return ds, list(ds._labels)


def pcam(root, split, download, tf, ours):
    import h5py
    from torchvision.datasets import PCAM

    ds = PCAM(str(root), split=split, transform=tf, download=download)
    with h5py.File(Path(root) / "pcam" / ds._FILES[split]["targets"][0]) as f:  # 32 KB of labels, no image read
        labels = [int(v) for v in f["y"][:, 0, 0, 0]]
    return ds, labels
