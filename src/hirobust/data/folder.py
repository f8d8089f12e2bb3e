"""Any labelled image folder is a dataset: ``data.dataset=folder:/path`` (and the same in ``--datasets``).

The layout is CLIP_benchmark's and torchvision's ImageFolder's: one sub-folder per class holding its images
(``/path/<class>/*.jpg``), or the same under ``/path/<split>/`` (``train``, ``val``, ``test``) when those exist.
Beside the class folders, optionally:

- ``classnames.txt``: the name of each class in prompts, one per line, in the sorted order of the class folders
  (else the folder names, ``_`` read as a space);
- ``templates.txt`` (one per line) or ``templates.json`` (a list): prompt templates with one ``{}`` (else
  ``"a photo of a {}."``);
- ``tree.json``: the hierarchy (the format ``hirobust tree show --json`` writes); ``data.hierarchy=`` overrides it.
  Without one, the folder has a single level (its leaves).

Before any model loads, every image is opened once (its header) and the folder refused, naming the file, when one
cannot be read; an empty folder or a class folder without images is refused too.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, NotFound
from .base import FileImages, ZSDataset

PREFIX = "folder:"
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def is_folder_name(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def folder_label(name: str) -> str:
    """A short, path-safe label of ``folder:/a/b/pets`` (``pets``) for run directories and file names."""
    return Path(name[len(PREFIX):].rstrip("/")).name or "folder"


def dataset_dir(name: str) -> str:
    """The sub-folder a multi-dataset evaluation writes dataset ``name`` into (its name; an image folder's label)."""
    return folder_label(name) if is_folder_name(name) else name


def _split_root(root: Path, split: str) -> Path:
    for cand in (root / split, root / {"test": "val", "val": "test"}.get(split, split)):
        if cand.is_dir() and any(p.is_dir() for p in cand.iterdir()):
            return cand
    return root


def _read_list(f: Path) -> list[str]:
    if f.suffix == ".json":
        try:
            data = json.loads(f.read_text())
        except ValueError as e:
            raise ConfigError(f"{str(f)!r} is not valid JSON ({e})") from None
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise ConfigError(f"{str(f)!r} must hold a JSON list of strings")
        return data
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]


def make_folder_dataset(name: str, split: str = "test", image_size: int = 224, num_workers: int = 0,
                        check_images: bool = True) -> ZSDataset:
    """The :class:`ZSDataset` of image folder ``name`` (``folder:/path``); see the module's docstring."""
    from .zeroshot import image_transform

    root = Path(name[len(PREFIX):]).expanduser()
    if not root.is_dir():
        raise NotFound(f"{name}: {str(root)!r} is not a folder; give data.dataset=folder:/path/to/images (one "
                       f"sub-folder per class)")
    where = _split_root(root, split)
    classes = sorted(p for p in where.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(f"{name}: {str(where)!r} holds no class folders; put each class's images in a folder of "
                         f"its own (/path/<class>/*.jpg)")
    samples = []
    for label, d in enumerate(classes):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS)
        if not files:
            raise ConfigError(f"{name}: class folder {str(d)!r} holds no images ({', '.join(EXTENSIONS)})")
        samples += [(f, label) for f in files]
    if check_images:
        _check_readable(name, samples)
    names = [d.name.replace("_", " ") for d in classes]
    if (root / "classnames.txt").is_file():
        names = _read_list(root / "classnames.txt")
        if len(names) != len(classes):
            raise ConfigError(f"{str(root / 'classnames.txt')!r} lists {len(names)} names for {len(classes)} class "
                             f"folders; give one name per folder, in the folders' sorted order")
    templates = ["a photo of a {}."]
    for f in (root / "templates.txt", root / "templates.json"):
        if f.is_file():
            templates = _read_list(f)
            if not templates or any(t.count("{}") != 1 for t in templates):
                raise ConfigError(f"{str(f)!r}: every template needs exactly one {{}} for the class name")
    hierarchy = str(root / "tree.json") if (root / "tree.json").is_file() else \
        {"name": "flat", "paths": {n: [] for n in names}}
    images = FileImages(samples, image_transform(image_size))
    return ZSDataset(name=name, classnames=names, templates=templates, hierarchy=hierarchy,
                     labels=images.labels.clone(), dataset=images, num_workers=num_workers)


def _check_readable(name: str, samples: list[tuple[Path, int]]) -> None:
    """Every image's header opens (PIL ``verify``): a damaged file is named before any work."""
    from PIL import Image

    bad = []
    for f, _ in samples:
        try:
            with Image.open(f) as img:
                img.verify()
        except Exception:  # noqa: BLE001 - PIL raises many kinds for a damaged file
            bad.append(f)
    if bad:
        raise ConfigError(f"{name}: {len(bad)} image(s) cannot be read, e.g. {str(bad[0])!r}; remove or replace "
                         f"them")
