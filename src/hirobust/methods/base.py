"""What every method shares: the trainable state, checkpoints, and the frozen reference task."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from ..models.zeroshot import ZeroShotClassifier


class Method(nn.Module):
    """Base of the fine-tuning methods. Subclasses set ``name`` and implement ``forward(x, y, generator)``
    returning a dict of scalars with ``"loss"``; by default the image tower is what is trained."""

    name = "method"
    needs_labels = True
    needs_reference = False

    def __init__(self, model: ZeroShotClassifier):
        super().__init__()
        self.model = model
        self.image_size = model.image_size
        self._ref_cache: dict[str, torch.Tensor] = {}  # per-training-sample outputs of the frozen reference

    def use_fixed_text(self, level: int = 0, logit_scale: float | None = None,
                       reference: nn.Module | None = None, needs_reference: bool = False) -> None:
        """The cosine baselines' shared set-up: the head's fixed level-``level`` text features as a buffer and
        the logit scale (``None``: the head's, i.e. the model's own); optionally the frozen reference."""
        if needs_reference and reference is None:
            raise ValueError(f"method {self.name!r} needs the frozen reference model")
        self.reference_model = reference
        head = self.model.head()
        self.register_buffer("text", head.level_text(level).clone(), persistent=False)
        self.scale = float(head.logit_scale) if logit_scale is None else logit_scale

    def text_logits(self, features: torch.Tensor) -> torch.Tensor:
        """scale · cos(features, fixed text), [B, D] -> [B, C]."""
        return self.scale * torch.nn.functional.normalize(features.float(), dim=-1) @ self.text.t()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> logits against the fixed text (after :meth:`use_fixed_text`)."""
        return self.text_logits(self.model.image_features(x))

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        visual = getattr(self.model.visual, "_orig_mod", self.model.visual)  # the same names when compiled
        for n, p in visual.named_parameters():
            if p.requires_grad:
                yield f"model.visual.{n}", p

    def trainable_state(self) -> Iterator[tuple[str, torch.Tensor]]:
        """What a checkpoint holds: the trainable tensors (frozen parts are rebuilt from the model source)."""
        yield from ((n, p.detach()) for n, p in self.trainable_parameters())

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.trainable_parameters())
        missing, unexpected = set(own) - set(state), set(state) - set(own)
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match method {self.name!r}: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
        with torch.no_grad():
            for n, p in own.items():
                if p.shape != state[n].shape:
                    raise ValueError(f"checkpoint tensor {n} has shape {tuple(state[n].shape)}, model has "
                                     f"{tuple(p.shape)}: it was trained with another architecture")
                p.copy_(state[n])

    @torch.no_grad()
    def cache_reference(self, name: str, fn, data, batch_size: int = 500) -> None:
        """Compute ``fn(x, y)`` (a frozen, deterministic function of images and labels) once for every training
        sample, so steps read it by sample index instead of recomputing it. Only for in-memory data (a fixed,
        augmentation-free pipeline); otherwise steps compute it per batch."""
        self._ref_cache.pop(name, None)
        if data.images is None:
            return
        device = next(self.model.parameters()).device
        out = [fn(x.to(device), y.to(device)) for x, y in data.batches(batch_size, image_size=self.image_size)]
        self._ref_cache[name] = torch.cat(out)

    def reference(self, name: str, fn, x: torch.Tensor, y: torch.Tensor | None,
                  index: torch.Tensor | None) -> torch.Tensor:
        """The frozen reference's ``fn(x, y)``: from the cache by sample index, else computed without autograd."""
        cache = self._ref_cache.get(name)
        if cache is not None and index is not None:
            return cache[index.to(cache.device)]
        with torch.no_grad():
            return fn(x, y)

    def after_step(self) -> None:
        """Hook after each optimiser step (e.g. clamping a temperature)."""

    def lr_scale(self, name: str) -> float:
        """Hook: the factor on the learning rate of the trainable parameter ``name`` (a name from
        :meth:`trainable_parameters`); the trainer puts each (weight-decay class, scale) in its own group."""
        return 1.0

    def head_state(self) -> dict:
        """What rebuilds the trained classifier's head (saved in hirobust.json; a ``"tensors"`` entry is saved
        as safetensors beside the weights)."""
        return {"head": "cosine", "logit_scale": float(self.model.head().logit_scale)}

    def sync_to_clip(self) -> None:
        """Write trained parts that live outside the image tower back into the open_clip model (for export)."""


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
        raise ValueError(f"the frozen reference's architecture differs from the model's (first difference: {k}: "
                         f"{sa.get(k)} vs {sb.get(k)}); give a reference checkpoint of the same architecture")
