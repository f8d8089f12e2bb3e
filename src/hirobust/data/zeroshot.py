"""The 15 zero-shot datasets of docs/method.md §5 through torchvision, with CLIP_benchmark's splits and prompts.

Every loader returns a :class:`ZSDataset` whose ``dataset`` yields ``(float [3, S, S] in [0, 1], leaf label)``:
RGB, ``Resize(S, bicubic)`` of the shorter side, ``CenterCrop(S)``, ``ToTensor`` and no mean/std normalisation (the
model normalises inside). ``labels`` are read from what torchvision keeps in memory (``.targets``, ``._labels``,
``._samples``, ``.y``) or, for PCAM, from the small label file, never by decoding images (torchvision's constructors
still do their own bookkeeping: STL-10 reads its binary arrays and checks their checksums, SUN397 lists its 108,754
files, CIFAR and Flowers-102 check checksums).

The evaluation split is ``"test"`` and maps to the split CLIP_benchmark evaluates: torchvision's ``test`` split, the
ImageNet validation folder, and the whole dataset for Caltech-101, Caltech-256, SUN397 and EuroSAT, which have no
official test split (CLIP_benchmark ignores the split there too). ``root`` is one data folder shared by all datasets
(default ``$HIROBUST_DATA`` or ``~/.cache/hirobust/data``); each dataset lives under it where torchvision puts it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from ..errors import ConfigError, MissingPackage, NotFound
from .base import FileImages, ZSDataset
from .imagenet import imagenet_wnids

if TYPE_CHECKING:
    from .spec import DatasetSpec, Source

__all__ = ["available", "default_root", "image_transform", "imagenet_wnids", "load", "ImageFolderByWnid"]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def default_root() -> Path:
    """``$HIROBUST_DATA``, else ``~/.cache/hirobust/data`` (``$HIROBUST_CACHE/data``)."""
    if os.environ.get("HIROBUST_DATA"):
        return Path(os.environ["HIROBUST_DATA"])
    from ..hierarchy.wordnet import cache_dir

    return cache_dir() / "data"


class _ToRGB:
    """PIL image -> RGB PIL image (grey, palette, CMYK and RGBA images occur in Caltech and SUN397)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == "RGB" else img.convert("RGB")


def image_transform(image_size: int = 224) -> Callable:
    """RGB -> ``Resize(image_size, bicubic)`` -> ``CenterCrop(image_size)`` -> float tensor [3, S, S] in [0, 1]."""
    from torchvision import transforms as T

    return T.Compose([
        _ToRGB(),
        T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        T.ToTensor(),
    ])


# ---------------------------------------------------------------------------------------------- ImageNet (a folder)
class ImageFolderByWnid(FileImages):
    """``folder/<wnid>/*.JPEG`` with labels indexing the full 1000-class list (some wnid folders may be absent).

    Folders that are not ImageNet-1k wnids are ignored (listed in ``ignored``).
    """

    def __init__(self, folder: str | Path, transform: Callable | None = None):
        self.folder = Path(folder)
        index = {w: i for i, w in enumerate(imagenet_wnids())}
        samples: list[tuple[Path, int]] = []
        self.ignored: list[str] = []
        for sub in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            if sub.name not in index:
                self.ignored.append(sub.name)
                continue
            files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            samples += [(f, index[sub.name]) for f in files]
        super().__init__(samples, transform)


def _imagenet_folder(root: Path, split: str) -> Path | None:
    sub = {"test": "val", "val": "val", "train": "train"}[split]
    for cand in (root / sub, root / "imagenet" / sub):
        if cand.is_dir():
            return cand
    return None


def _check_imagenet(root: Path, split: str) -> str | None:
    folder = _imagenet_folder(root, split)
    if folder is None:
        return f"no folder {str(root / ('train' if split == 'train' else 'val'))!r}"
    wnids = set(imagenet_wnids())
    found = [p for p in folder.iterdir() if p.is_dir() and p.name in wnids]
    if not found:
        return f"{str(folder)!r} holds no ImageNet wnid folder (like n01440764/)"
    if not any(f.suffix.lower() in IMAGE_EXTENSIONS for p in found for f in p.iterdir()):
        return f"the wnid folders in {str(folder)!r} hold no images (*.JPEG, *.png)"
    if len(found) < len(wnids):
        return (f"partial: {str(folder)!r} holds {len(found)} of {len(wnids)} ImageNet class folders "
                f"(data.allow_partial=true evaluates the classes present, marked partial in every table)")
    return None


# ---------------------------------------------------------------------------------------------------- public API
def _resolve(spec: DatasetSpec, split: str, root: str | Path | None) -> tuple[Source, Path]:
    source = spec.source
    if source is None:
        raise ConfigError(f"dataset {spec.name!r} is not a zero-shot dataset read through torchvision")
    if split not in source.splits:
        raise ConfigError(f"dataset {spec.name!r} has no split {split!r}; use one of {', '.join(source.splits)}")
    return source, Path(root).expanduser() if root is not None else default_root()


def _missing_packages(source: Source) -> list[str]:
    out = []
    for mod in source.needs:
        try:
            __import__(mod)
        except ImportError:
            out.append(mod)
    return out


def _missing(name: str, source: Source, root: Path, split: str, allow_partial: bool = False) -> str | None:
    """Why the data is not there (``None`` when it looks complete, or is partial and that is allowed); cheap: looks
    at paths only."""
    return _missing_or_partial(name, source, root, split, allow_partial)[0]


def _missing_or_partial(name: str, source: Source, root: Path, split: str,
                        allow_partial: bool = False) -> tuple[str | None, str | None]:
    """(why the data is not there, what is missing of a partial copy that is allowed)."""
    if name == "imagenet":
        why = _check_imagenet(root, split)
        if allow_partial and why and why.startswith("partial"):
            return None, why
        return why, None
    missing = [p for p in source.files(split) if not (root / p).exists()]
    return (f"missing under {str(root)!r}: {', '.join(missing)}" if missing else None), None


def available(spec: DatasetSpec, root: str | Path | None = None, split: str = "test",
              allow_partial: bool = False) -> tuple[bool, str]:
    """Whether zero-shot dataset ``spec`` can be loaded from ``root`` without downloading, and why not (cheap: no
    image is read). By name: :func:`hirobust.data.registry.available`."""
    name = spec.name
    try:
        source, folder = _resolve(spec, split, root)
    except ValueError as e:
        return False, str(e)
    packages = _missing_packages(source)
    if packages:
        return False, f"dataset {name!r} needs the Python package(s) {', '.join(packages)} (pip install them)"
    why = _missing(name, source, folder, split, allow_partial)
    return (True, f"found under {str(folder)!r}") if why is None else (False, f"{why}; expected {source.layout}")


def load(spec: DatasetSpec, split: str = "test", root: str | Path | None = None, image_size: int = 224,
         download: bool = False, num_workers: int = 0, prompt_names: str = "clip_benchmark",
         caltech101_background: bool = True, allow_partial: bool = False, max_damaged: float = 0.001,
         check_images: bool | None = None, progress: bool = True, **_) -> ZSDataset:
    """Loader of zero-shot dataset ``spec`` (the registry passes ``SPECS[name]``; by name:
    ``get_dataset(name, ...)``): images in [0, 1] at ``image_size``, leaf labels, class names, CLIP_benchmark
    templates and the shipped hierarchy (all as the spec says).

    Missing data raises ``FileNotFoundError`` naming the expected files and how to get them (``download=True`` for
    the datasets torchvision can download, the layout to build by hand for the others). ``prompt_names``:
    ``clip_benchmark`` names classes in the prompts as CLIP_benchmark does, ``unique`` by the tree's names.
    ``caltech101_background``: Caltech-101 with CLIP_benchmark's background class (102 classes; see
    :func:`_caltech101_with_background`), else torchvision's 101.

    Before it is returned the copy is checked (:mod:`hirobust.data.check`): complete (else refused naming what is
    missing, or with ``allow_partial`` reduced to what is there and marked), md5 sums verified once per copy, and,
    with ``check_images`` (default: every split but ``train``), every image decoded once: unreadable ones are
    left out and counted, more than ``max_damaged`` of them refuse the dataset.
    """
    name = spec.name
    source, folder = _resolve(spec, split, root)
    packages = _missing_packages(source)
    if packages:
        raise MissingPackage(f"dataset {name!r} needs the Python package(s) {', '.join(packages)}: pip install them")
    why, partial = _missing_or_partial(name, source, folder, split, allow_partial)
    if why is not None and not (download and source.downloadable):
        raise NotFound(f"{name}: {why}. {source.how_to_get}")
    from ..checks import fraction
    from . import check

    fraction("data.max_damaged", max_damaged)
    ds = _build(spec, split, folder, source, why, partial, download, image_size, num_workers, prompt_names,
                caltech101_background)
    expected = spec.eval_images if split == "test" else None
    if name == "caltech101" and not caltech101_background and expected:
        expected -= CALTECH101_BACKGROUND_IMAGES
    ds = check.check_complete(ds, folder, expected, allow_partial)
    if check_images if check_images is not None else split != "train":
        ds = check.drop_unreadable(ds, folder, max_damaged, progress)
    return ds


def _build(spec, split, folder, source, why, partial, download, image_size, num_workers, prompt_names,
           caltech101_background) -> ZSDataset:
    name = spec.name
    tf = image_transform(image_size)
    prompts = spec.clip_benchmark_prompt_names() if prompt_names == "clip_benchmark" else {}
    if name == "caltech101" and caltech101_background:
        return _caltech101_with_background(spec, folder, tf, num_workers, prompts)
    if name == "imagenet":
        dataset = ImageFolderByWnid(_imagenet_folder(folder, split), transform=tf)
        labels = dataset.labels.clone()
    else:
        if download:
            folder.mkdir(parents=True, exist_ok=True)
        from .check import checksums_once

        try:
            with checksums_once(name, [folder / f for f in source.files(split)]) as failed:
                dataset, labels = source.build(folder, source.splits[split], download and why is not None, tf,
                                               spec.class_names())
        except (RuntimeError, OSError) as e:  # torchvision's "Dataset not found or corrupted", a failed download
            what = "the download failed" if download and why is not None else "could not load"
            bad = f"; {failed[0]!r} is missing or fails its md5 check" if failed else ""
            raise NotFound(f"{name}: {what} ({e}){bad} under {str(folder)!r}. {source.how_to_get}") from e
    return ZSDataset(
        name=name,
        classnames=spec.class_names(),
        templates=spec.prompt_templates(),
        hierarchy=spec.trees,
        labels=labels if torch.is_tensor(labels) else torch.as_tensor(list(labels), dtype=torch.long),
        dataset=dataset,
        num_workers=num_workers,
        prompt_names=prompts,
        partial=partial,
    )


BACKGROUND = "background"  # CLIP_benchmark's name of Caltech-101's BACKGROUND_Google class
CALTECH101_BACKGROUND_IMAGES = 467
# its ancestors, one per superclass level, added to every shipped Caltech-101 tree (a branch of its own)
BACKGROUND_ANCESTORS = ["background clutter", "background scene", "background image", "background picture"]


def _caltech101_with_background(spec: DatasetSpec, root: Path, tf, num_workers: int, prompt_names: dict) -> ZSDataset:
    """Caltech-101 as CLIP_benchmark loads it: every folder of ``101_ObjectCategories`` in sorted order, so
    ``BACKGROUND_Google`` is class 0 ("background") and the 101 object classes follow in torchvision's order."""
    from torchvision.datasets import ImageFolder

    from ..hierarchy import load_tree_file

    folder = root / "caltech101" / "101_ObjectCategories"
    ds = ImageFolder(str(folder), transform=tf)
    if len(ds.classes) != 102 or ds.classes[0] != "BACKGROUND_Google":
        raise NotFound(f"caltech101: {str(folder)!r} holds {len(ds.classes)} class folders (first "
                                f"{ds.classes[:1]}), expected BACKGROUND_Google and the 101 categories; or set "
                                f"data.caltech101_background=false to read it as torchvision does")
    tree = load_tree_file(spec.trees)
    for tree_spec in tree["trees"].values():
        levels = tree_spec.get("num_levels", tree.get("num_levels"))
        tree_spec["paths"] = {BACKGROUND: BACKGROUND_ANCESTORS[:levels - 1], **tree_spec["paths"]}
    names = [BACKGROUND, *spec.class_names()]
    tree["classes"] = names
    return ZSDataset(name="caltech101", classnames=names, templates=spec.prompt_templates(), hierarchy=tree,
                     labels=torch.as_tensor(ds.targets, dtype=torch.long), dataset=ds, num_workers=num_workers,
                     prompt_names=prompt_names)
