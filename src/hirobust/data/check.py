"""A zero-shot dataset's copy checked before any work (:func:`hirobust.data.zeroshot.load` calls these).

- **Complete**: every image file the dataset lists (from its annotation files or folders) exists, the evaluation
  split holds its official number of images (:attr:`DatasetSpec.eval_images`) and every class has an image. An
  incomplete copy is refused naming what is missing, or, with ``data.allow_partial=true``, evaluated on the images
  present and marked partial in every report and table.
- **Checksums once per copy**: torchvision verifies md5 sums on every construction (STL-10 hashes ~3 GB per load
  and per rank); after one successful verification the files' sizes and modification times are kept
  (``<cache>/checked/``), and while they are unchanged only the files' presence is checked. A failed verification
  names the file.
- **Readable images**: every image of an evaluated split is decoded once (a progress bar, parallel over the
  loader's workers; the result is kept, keyed on the files' sizes and times). Unreadable or truncated images are
  dropped and counted (names in the run log and the report); above ``data.max_damaged`` (0.1%) of the split the
  dataset is refused as damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import NotFound
from .base import FileImages, ZSDataset

log = logging.getLogger("hirobust.data")

# torchvision's modules whose constructors verify md5 sums through their module-level ``check_integrity``
_MD5_MODULES = ("cifar", "stl10", "flowers102")


def _cache() -> Path:
    from ..hierarchy.wordnet import cache_dir

    return cache_dir() / "checked"


def _stat_key(paths: list[Path]) -> str:
    """A digest of the files' paths, sizes and modification times (what changes when a copy changes)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def _marker(kind: str, paths: list[Path]) -> Path:
    """Where the check of this list of files is kept (one file per list: a copy elsewhere is another list)."""
    return _cache() / f"{kind}-{hashlib.sha1(chr(10).join(map(str, paths)).encode()).hexdigest()[:16]}.json"


def _read(marker: Path) -> dict:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def _write(marker: Path, obj: dict) -> None:
    from ..io import write_json

    try:
        write_json(obj, marker)
    except OSError as e:  # a read-only cache costs time, never the run
        log.warning("cannot keep the data check in %s (%s); it will run again next time", marker, e.strerror)


@contextlib.contextmanager
def checksums_once(name: str, files: list[Path]) -> Iterator[list[str]]:
    """torchvision's md5 verification for the construction inside the block, once per copy of ``files``: skipped
    (presence only) while the files are as they were when it last passed. Yields the list of files that failed
    (filled while the block runs, to name them in an error)."""
    import importlib

    from torchvision.datasets.utils import check_integrity as verify

    mods = [importlib.import_module(f"torchvision.datasets.{m}") for m in _MD5_MODULES]
    marker = _marker(f"md5-{name}", files)
    key = _stat_key(files)
    trusted = _read(marker).get("key") == key
    failed: list[str] = []
    originals = [m.check_integrity for m in mods]

    def check(fpath, md5=None) -> bool:
        ok = os.path.isfile(fpath) if trusted else verify(fpath, md5)
        if not ok:
            failed.append(str(fpath))
        return ok

    for m in mods:
        m.check_integrity = check
    try:
        yield failed
    finally:
        for m, orig in zip(mods, originals):
            m.check_integrity = orig
    if not failed and not trusted:
        _write(marker, {"dataset": name, "key": key, "files": [str(f) for f in files]})


# ------------------------------------------------------------------------------------------------- listed files
def image_files(dataset) -> list[Path] | None:
    """The image file of every sample of a torchvision (or hirobust) dataset, in sample order; None for datasets
    held in arrays (CIFAR, STL-10, PCAM), whose files torchvision checks itself."""
    if isinstance(dataset, torch.utils.data.Subset):
        inner = image_files(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    if isinstance(dataset, FileImages):  # hirobust's image folders (ImageNet's too)
        return [dataset.path(i) for i in range(len(dataset))]
    for attr in ("samples", "_samples"):  # ImageFolder, EuroSAT; StanfordCars
        if isinstance(getattr(dataset, attr, None), list):
            return [Path(s[0]) for s in getattr(dataset, attr)]
    for attr in ("_image_files", "_images"):  # Flowers102, FGVCAircraft, SUN397, Food101, DTD; OxfordIIITPet
        if isinstance(getattr(dataset, attr, None), list):
            return [Path(p) for p in getattr(dataset, attr)]
    cls = type(dataset).__name__
    if cls == "Caltech101":
        return [Path(dataset.root, "101_ObjectCategories", dataset.categories[y], f"image_{i:04d}.jpg")
                for y, i in zip(dataset.y, dataset.index)]
    if cls == "Caltech256":
        return [Path(dataset.root, "256_ObjectCategories", dataset.categories[y], f"{y + 1:03d}_{i:04d}.jpg")
                for y, i in zip(dataset.y, dataset.index)]
    return None


def _examples(items: list, k: int = 3) -> str:
    return ", ".join(repr(str(x)) for x in items[:k]) + (f" and {len(items) - k} more" if len(items) > k else "")


def check_complete(ds: ZSDataset, root: Path, expected: int | None, allow_partial: bool) -> ZSDataset:
    """``ds`` if its copy is complete; else a :class:`NotFound` naming what is missing, or (``allow_partial``) the
    images present, marked partial."""
    files = image_files(ds.dataset) if ds.dataset is not None else None
    keep = None
    why = []
    if files is not None:
        present = [os.path.exists(f) for f in files]
        missing = [_rel(f, root) for f, ok in zip(files, present) if not ok]
        if missing:
            why.append(f"{len(missing):,} of the {len(files):,} images its annotation files list are missing "
                       f"({_examples(missing)})")
            keep = torch.tensor(present, dtype=torch.bool)
    labels = ds.labels if keep is None else ds.labels[keep]
    if expected is not None and len(labels) < expected:
        why.append(f"it holds {len(labels):,} of the {expected:,} images of the official split")
    elif expected is not None and len(labels) > expected:
        log.warning("%s: %d images where the official split has %d; not the expected version of the dataset?",
                    ds.name, len(labels), expected)
    absent = sorted(set(range(len(ds.classnames))) - set(labels.tolist()))
    if absent and len(labels):
        why.append(f"{len(absent)} of its {len(ds.classnames)} classes have no image "
                   f"({_examples([ds.classnames[i] for i in absent])})")
    if not why:
        return ds
    text = "; ".join(why)
    if not allow_partial:
        raise NotFound(f"{ds.name}: incomplete under {str(root)!r}: {text}; complete the copy, or set "
                       f"data.allow_partial=true to evaluate the images present (marked partial in every table)")
    log.warning("%s: partial copy evaluated (data.allow_partial): %s", ds.name, text)
    out = ds if keep is None else ds.subset(torch.nonzero(keep).flatten())
    return replace(out, partial="; ".join(x for x in (ds.partial, text) if x))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------ readable images
class _Probe(torch.utils.data.Dataset):
    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, str]:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                img.load()
            return i, ""
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's ways to say damaged
            return i, f"{type(e).__name__}: {e}"[:200]


def unreadable(files: list[Path], workers: int = 0, progress: bool = True) -> dict[int, str]:
    """Index -> PIL's error for every image among ``files`` that does not decode (each decoded once, in
    parallel over ``workers`` loader processes, and under torchrun split among the ranks, which then share the
    answer; it is kept while the files keep their sizes and times, and reused when every rank has it)."""
    from .. import distributed

    marker = _marker("images", files)
    key = _stat_key(files)
    kept = _read(marker)
    if all(distributed.gather_objects(kept.get("key") == key)):  # every rank, or none: nodes may keep their own
        return {int(k): v for k, v in kept["unreadable"].items()}
    from tqdm.auto import tqdm

    from ..progress import label

    rank, world = distributed.rank(), distributed.world()
    mine = list(range(rank, len(files), world))
    loader = torch.utils.data.DataLoader(_Probe([files[i] for i in mine]), batch_size=64, num_workers=workers,
                                         collate_fn=lambda b: b)
    bad: dict[int, str] = {}
    with tqdm(total=len(files), desc=label("checking images"), unit="img", disable=not progress or rank != 0,
              leave=False) as bar:
        for batch in loader:
            bad.update({mine[i]: err for i, err in batch if err})
            bar.update(len(batch) * world)
    bad = {i: err for part in distributed.gather_objects(bad) for i, err in part.items()}  # every rank's share
    _write(marker, {"key": key, "images": len(files), "unreadable": bad})  # the same answer, by every rank
    return bad


def drop_unreadable(ds: ZSDataset, root: Path, max_fraction: float, progress: bool = True) -> ZSDataset:
    """``ds`` without its unreadable images (counted, named in the log and in ``ds.damaged``); a
    :class:`NotFound` when more than ``max_fraction`` of them are."""
    files = image_files(ds.dataset) if ds.dataset is not None else None
    if not files:
        return ds
    bad = unreadable(files, ds.num_workers, progress)
    if not bad:
        return ds
    names = [f"{_rel(files[i], root)} ({err})" for i, err in sorted(bad.items())]
    frac = len(bad) / len(files)
    if frac > max_fraction:
        raise NotFound(f"{ds.name}: damaged: {len(bad):,} of {len(files):,} images do not decode ({frac:.2%}, above "
                       f"data.max_damaged={max_fraction:g}), e.g. {names[0]}; replace the damaged files or raise "
                       f"data.max_damaged")
    log.warning("%s: %d of %d images do not decode and are left out: %s", ds.name, len(bad), len(files),
                "; ".join(names))
    good = torch.ones(len(files), dtype=torch.bool)
    good[list(bad)] = False
    return replace(ds.subset(torch.nonzero(good).flatten()), damaged=[_rel(files[i], root) for i in sorted(bad)])

