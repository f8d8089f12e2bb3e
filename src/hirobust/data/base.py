"""A zero-shot dataset: images with leaf labels, class names, prompt templates and a hierarchy file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def seeded_indices(total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices [min(n, total)] of the seeded subset of ``n`` out of ``total`` samples (all if ``n`` is None):
    the first ``n`` of one seeded permutation, so a smaller subset of the same seed lies inside a larger one
    (AutoAttack's images inside PGD's, say) and :func:`nested_positions` finds it there."""
    if n is None or n >= total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:n].sort().values


def nested_positions(total: int, small: int, large: int | None, seed: int = 0) -> torch.Tensor:
    """Positions [small] of the seeded ``small``-subset's samples within the seeded ``large``-subset of the same
    ``total`` and ``seed`` (both in dataset order): per-image results of the two pair up as ``large_bits[pos]``."""
    big = seeded_indices(total, large, seed)
    if small > len(big):
        raise ConfigError(f"a subset of {small} samples does not lie inside one of {len(big)}")
    return torch.searchsorted(big, seeded_indices(total, small, seed))


class FileImages(torch.utils.data.Dataset):
    """(transformed image, label) of ``samples`` [(path, label)], each file opened when read (image folders).

    Kept compactly: every path in one byte array with offsets, the labels in another (numpy), no Python object per
    image. For ImageNet's 1.28 M training images a list of (Path, int) holds 0.45 GiB, and each forked loader worker
    copies it page by page (+0.53 GiB each) as reading it touches the objects' reference counts; these arrays hold
    0.11 GiB and a worker adds 0.016 GiB (``benchmarks/filelist_memory.py``)."""

    def __init__(self, samples: Sequence[tuple], transform=None):
        import os

        import numpy as np

        paths = [os.fsencode(p) for p, _ in samples]
        self._offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in paths], out=self._offsets[1:])
        self._paths = np.frombuffer(b"".join(paths), dtype=np.uint8)
        self._labels = np.asarray([int(lab) for _, lab in samples], dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self._labels)

    def path(self, i: int):
        """The file of sample ``i`` (a ``Path``)."""
        import os
        from pathlib import Path

        return Path(os.fsdecode(self._paths[self._offsets[i]:self._offsets[i + 1]].tobytes()))

    @property
    def labels(self) -> torch.Tensor:
        """The label of every sample (int64 [N])."""
        return torch.from_numpy(self._labels)

    @property
    def samples(self) -> list[tuple]:
        """[(path, label)] of every sample, built when asked (torchvision's ImageFolder has it as a list)."""
        return [(self.path(i), int(self._labels[i])) for i in range(len(self))]

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.path(i)) as img:
            img.load()
            x = self.transform(img) if self.transform is not None else img.copy()
        return x, int(self._labels[i])


@dataclass
class ZSDataset:
    """Images in [0, 1] with leaf labels, for zero-shot classification over a hierarchy.

    Small datasets live in memory as ``images`` (uint8 [N, 3, H, W]); large ones wrap a torch ``Dataset``
    returning ``(float image in [0, 1] [3, H, W], label)``.
    """

    name: str
    classnames: list[str]
    templates: list[str]
    hierarchy: str | dict  # shipped hierarchy name, JSON path, or the JSON itself
    labels: torch.Tensor  # long [N]
    images: torch.Tensor | None = None  # uint8 [N, 3, H, W]
    dataset: torch.utils.data.Dataset | None = None
    prompt_names: dict[str, str] = field(default_factory=dict)  # class/node name -> text in prompts
    num_workers: int = 0
    held_out: list[str] = field(default_factory=list)  # classes removed by restrict_classes (still in the trees)
    partial: str | None = None  # what is missing, when a partial copy was allowed (data.allow_partial)
    damaged: list[str] = field(default_factory=list)  # images left out because they do not decode (data/check.py)

    def __post_init__(self):
        if (self.images is None) == (self.dataset is None):
            raise ConfigError("give exactly one of images (in memory) or dataset (a torch Dataset)")
        unlabelled = len(self.labels) and bool((self.labels == -1).all())  # -1 everywhere: no labels
        if not unlabelled and len(self.labels) and (int(self.labels.min()) < 0 or
                                                    int(self.labels.max()) >= len(self.classnames)):
            raise ConfigError(f"dataset {self.name!r}: labels outside [0, {len(self.classnames)})")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and int(self.labels.min()) >= 0

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ZSDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.images is not None:
            return replace(self, images=self.images[idx], labels=self.labels[idx])
        return replace(self, dataset=torch.utils.data.Subset(self.dataset, idx.tolist()), labels=self.labels[idx])

    def restrict_classes(self, names: Sequence[str]) -> ZSDataset:
        """Only the images of the classes ``names``, relabelled 0..len(names)-1 in this dataset's class order
        (the held-out classes' images and names are gone). Unknown names or an empty list raise ``ValueError``."""
        names = list(names)
        unknown = [n for n in names if n not in self.classnames]
        if unknown:
            from ..errors import did_you_mean

            raise ConfigError(f"train_classes names {unknown[0]!r}{did_you_mean(unknown[0], self.classnames)}, "
                             f"which is not a class of dataset {self.name!r}; "
                             f"its classes: {', '.join(self.classnames)}")
        if not names:
            raise ConfigError(f"train_classes leaves no class of dataset {self.name!r} to train on; name at least one")
        keep = [i for i, c in enumerate(self.classnames) if c in names]
        remap = torch.full((len(self.classnames),), -1, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        sub = self.subset(torch.nonzero(remap[self.labels.clamp_min(0)] >= 0).flatten())
        return replace(sub, classnames=[self.classnames[i] for i in keep], labels=remap[sub.labels],
                       held_out=[*self.held_out, *(c for c in self.classnames if c not in names)])

    def seeded_subset(self, n: int | None, seed: int = 0) -> ZSDataset:
        """A fixed random subset of ``n`` samples (all if ``n`` is None or too large), the same for every model:
        the samples :func:`seeded_indices` names, in dataset order."""
        if n is None or n >= len(self):
            return self
        return self.subset(seeded_indices(len(self), n, seed))

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        image_size: int | None = None,
        drop_last: bool = False,
        start: int = 0,
        with_index: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yields ``(x float [B, 3, H, W] in [0, 1], y long [B])`` (and the sample indices [B] if ``with_index``);
        ``start`` skips that many batches (resume); ``shard=(rank, world)`` yields only that rank's contiguous
        slice of every batch (data-parallel training: ``batch_size`` is the global batch)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        nb = n // batch_size if drop_last else -(-n // batch_size)
        batches = [order[b * batch_size : (b + 1) * batch_size] for b in range(start, nb)]
        if shard is not None:
            r, w = shard
            batches = [idx[r * len(idx) // w : (r + 1) * len(idx) // w] for idx in batches]
        if self.images is not None:
            for idx in batches:
                out = (resize(self.images[idx].float().div_(255.0), image_size), self.labels[idx])
                yield out + (idx,) if with_index else out
            return
        sampler = torch.cat(batches) if batches else order[:0]
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=[b.tolist() for b in batches], num_workers=self.num_workers,
            persistent_workers=False, pin_memory=torch.cuda.is_available(),
        )
        pos = 0
        for x, y in loader:
            out = (resize(x, image_size), y)
            yield out + (sampler[pos : pos + len(y)],) if with_index else out
            pos += len(y)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinear (antialiased) resize of a batch to ``size`` x ``size``, outside any attack."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
