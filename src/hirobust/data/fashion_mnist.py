"""Fashion-MNIST from its idx files: a configured root, then Debian's package, then torchvision's download."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, NotFound
from .base import ZSDataset
from .idx import read_idx

if TYPE_CHECKING:
    from .spec import DatasetSpec

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
HOW_TO_GET = (
    "get Fashion-MNIST with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or let torchvision download it "
    "(network needed), or put the four idx files (train-images-idx3-ubyte[.gz], ...) in a folder passed as data root"
)


def _find(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz", folder / "raw" / stem, folder / "raw" / f"{stem}.gz",
                 folder / "FashionMNIST" / "raw" / stem, folder / "FashionMNIST" / "raw" / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def locate(root: str | Path | None = None, download: bool = True) -> tuple[Path, Path, Path, Path]:
    """Paths of (train images, train labels, test images, test labels)."""
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise NotFound(f"Fashion-MNIST data root {str(root)!r} does not exist; {HOW_TO_GET}")
        candidates = [root]
    else:
        candidates = [Path(p) for p in os.environ.get("HIROBUST_FASHION_MNIST", "").split(os.pathsep) if p]
        candidates.append(DEBIAN_DIR)
    for folder in candidates:
        found = [_find(folder, s) for split in ("train", "test") for s in FILES[split]]
        if all(found):
            return tuple(found)  # type: ignore[return-value]
    if root is not None:
        missing = [s for s in FILES["train"] + FILES["test"] if _find(root, s) is None]
        raise NotFound(f"Fashion-MNIST files missing in {str(root)!r}: {missing}; {HOW_TO_GET}")
    if download:
        from ..hierarchy.wordnet import cache_dir

        dest = cache_dir() / "data"
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(dest), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(dest), train=False, download=True)
        except Exception as e:  # no network, or a mirror down
            raise NotFound(
                f"Fashion-MNIST not found locally and the download failed ({e}); {HOW_TO_GET}"
            ) from e
        return locate(dest, download=False)
    raise NotFound(f"Fashion-MNIST not found; {HOW_TO_GET}")


SPLITS = {  # a validation split held out of the official training set, for tuning without the test split
    "train": ("train", slice(0, 50_000)),
    "val": ("train", slice(50_000, None)),
    "train-full": ("train", slice(None)),
    "test": ("test", slice(None)),
}


def load(spec: DatasetSpec, split: str = "test", root: str | Path | None = None) -> ZSDataset:
    """``train`` (the first 50,000 official training images), ``val`` (the other 10,000), ``train-full``, ``test``;
    class names, templates and trees as ``spec`` says (the registry passes ``SPECS["fashion-mnist"]``)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} for fashion-mnist; use one of {', '.join(SPLITS)}")
    paths = locate(root)
    part, rows = SPLITS[split]
    img_path, lbl_path = paths[:2] if part == "train" else paths[2:]
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise ConfigError(f"{img_path} / {lbl_path}: shapes {tuple(images.shape)} and {tuple(labels.shape)} do not "
                         f"form an image set with one label per image; fetch the data again")
    names = spec.class_names()
    if int(labels.max()) >= len(names):
        raise ConfigError(f"{lbl_path}: label {int(labels.max())} outside the 10 Fashion-MNIST classes")
    images, labels = images[rows], labels[rows]
    return ZSDataset(
        name=spec.name,
        classnames=names,
        templates=spec.prompt_templates(),
        hierarchy=spec.trees,
        images=images[:, None].expand(-1, 3, -1, -1).contiguous(),  # RGB, as CLIP benchmarks feed grey images
        labels=labels.long(),
    )
