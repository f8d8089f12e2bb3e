"""The frozen reference model and the per-training-sample cache of its outputs, both outside the methods.

A method that compares against the starting model (PMG-AFT, FARE, TGA-ZSR) is given a :class:`FrozenReference`
and declares, in :meth:`~hirobust.methods.base.Method.reference_outputs`, which of the reference's outputs are a
fixed function of a training sample (``name -> fn(x, y)``). The trainer computes those once over the dataset's
image tensor into the method's :class:`ReferenceCache`; a step reads them by sample index (the method sees
tensors, never the dataset).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..models.zeroshot import ZeroShotClassifier

ReferenceFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # (images [B, ...], labels [B]) -> [B, ...]


class FrozenReference(nn.Module):
    """A frozen copy of the starting classifier (PMG-AFT's and FARE's f_orig, TGA-ZSR's A_orig).

    Eval mode, no gradients, never updated: ``train()`` is a no-op and its parameters have
    ``requires_grad=False``, so optimisers never see them. ``source`` may be another classifier (e.g. another
    checkpoint); its image tower must have the model's architecture.
    """

    def __init__(self, model: ZeroShotClassifier, source: ZeroShotClassifier | None = None):
        super().__init__()
        if source is not None:
            check_same_architecture(model.visual, source.visual)
        self.model = copy.deepcopy(source if source is not None else model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # noqa: ARG002 - stays in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)

    @torch.no_grad()
    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.image_features(x)


def check_same_architecture(a: nn.Module, b: nn.Module) -> None:
    """Raise ``ValueError`` unless the two modules have the same parameter names and shapes."""
    sa = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    sb = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    if sa != sb:
        diff = sorted(set(sa) ^ set(sb)) or [k for k in sa if sa[k] != sb[k]]
        k = diff[0]
        raise ConfigError(f"the frozen reference's architecture differs from the model's (first difference: {k}: "
                         f"{sa.get(k)} vs {sb.get(k)}); give a reference checkpoint of the same architecture")


class ReferenceCache:
    """Per-training-sample outputs of the frozen reference, by name: ``[N, ...]`` tensors indexed by sample.

    Filled by the trainer (:meth:`compute`) for in-memory data only (a fixed, augmentation-free pipeline); on
    other data it stays empty and :meth:`get` computes the output per batch. Not an ``nn.Module``: the values are
    neither parameters nor checkpointed state, and stay on the device they were computed on.
    """

    def __init__(self):
        self.values: dict[str, torch.Tensor] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.values

    @torch.no_grad()
    def compute(self, outputs: dict[str, ReferenceFn], data, device: torch.device | str,
                image_size: int | None = None, batch_size: int = 500) -> None:
        """Compute every ``fn(x, y)`` of ``outputs`` once for every sample of ``data`` (a ``ZSDataset``), in
        order, ``batch_size`` images at a time on ``device``. Replaces what was cached before; caches nothing when
        ``data`` is not in memory (``data.images is None``)."""
        self.values.clear()
        if not outputs or data.images is None:
            return
        for name, fn in outputs.items():
            out = [fn(x.to(device), y.to(device)) for x, y in data.batches(batch_size, image_size=image_size)]
            self.values[name] = torch.cat(out)

    def get(self, name: str, fn: ReferenceFn, x: torch.Tensor, y: torch.Tensor | None,
            index: torch.Tensor | None) -> torch.Tensor:
        """The reference's ``fn(x, y)`` for a batch: the cached rows of samples ``index`` [B] when cached, else
        computed here without autograd."""
        cache = self.values.get(name)
        if cache is not None and index is not None:
            return cache[index.to(cache.device)]
        with torch.no_grad():
            return fn(x, y)
