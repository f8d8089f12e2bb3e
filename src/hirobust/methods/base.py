"""What the trainer trains (:class:`Trainable`: every hook it calls, declared with its default) and what every
fine-tuning method shares (:class:`Method`: the trained image tower, the fixed text of the cosine baselines,
checkpoints, the head it saves, its passes per step)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from .reference import FrozenReference, ReferenceCache, ReferenceFn, check_same_architecture

if TYPE_CHECKING:
    from ..models.zeroshot import ZeroShotClassifier

__all__ = ["Trainable", "Method", "StepPasses", "FrozenReference", "ReferenceCache", "check_same_architecture"]


class StepPasses(NamedTuple):
    """A training step's encoder passes per image: input-gradient passes (the attack's iterations),
    forward+backward passes (the loss), forward-only passes (e.g. the frozen reference)."""

    input_grad: int
    forward_backward: int
    forward: int


class Trainable(nn.Module):
    """What :class:`hirobust.train.Trainer` trains: an ``nn.Module`` whose ``forward(x, y, generator=None,
    index=None)`` returns a dict of scalars with ``"loss"`` (``index``: the batch's sample indices, for
    :attr:`reference_cache`). The trainer calls exactly the hooks below, in this order:

    1. :meth:`reference_outputs`, computed once into :attr:`reference_cache` over in-memory training data;
    2. :meth:`prepare` on the first global batch of a fresh run, when :attr:`needs_first_batch`;
    3. :meth:`compile_image_tower` when the config asks for ``torch.compile``;
    4. per step: ``forward``, then :meth:`after_step` after the optimiser step;
    5. :meth:`trainable_parameters` (with :meth:`lr_scale`) for the optimiser, :meth:`trainable_state` /
       :meth:`load_trainable_state` for checkpoints.

    ``model`` is the network being trained; its ``.visual`` is the image tower.
    """

    name = "task"
    image_size: int | None = None  # the input size data is resized to (None: as stored)
    needs_first_batch = False  # whether :meth:`prepare` wants the first global batch of a fresh run
    model: nn.Module

    def __init__(self):
        super().__init__()
        self.reference_cache = ReferenceCache()  # filled by the trainer from :meth:`reference_outputs`

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, Parameter) of everything the optimiser updates, in a fixed order."""
        raise NotImplementedError

    def trainable_state(self) -> Iterator[tuple[str, torch.Tensor]]:
        """What a checkpoint holds: the trainable tensors (frozen parts are rebuilt from the model source)."""
        yield from ((n, p.detach()) for n, p in self.trainable_parameters())

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's :meth:`trainable_state`; ``ValueError`` when names or shapes differ."""
        own = dict(self.trainable_parameters())
        missing, unexpected = set(own) - set(state), set(state) - set(own)
        if missing or unexpected:
            raise ConfigError(f"checkpoint does not match method {self.name!r}: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
        with torch.no_grad():
            for n, p in own.items():
                if p.shape != state[n].shape:
                    raise ConfigError(f"checkpoint tensor {n} has shape {tuple(state[n].shape)}, model has "
                                     f"{tuple(p.shape)}: it was trained with another architecture")
                p.copy_(state[n])

    def reference_outputs(self) -> dict[str, ReferenceFn]:
        """The frozen reference's outputs to cache per training sample, ``name -> fn(x, y)`` (fixed, deterministic
        functions of an image and its label). Default: none."""
        return {}

    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Data-dependent initialisation from the first global batch (images [B, 3, H, W] in [0, 1], leaf labels
        [B]); called only when :attr:`needs_first_batch`. Default: nothing."""

    def compile_image_tower(self) -> None:
        """``torch.compile`` the image tower in place (it shares its parameters; exports stay eager); once."""
        if not hasattr(self.model.visual, "_orig_mod"):
            self.model.visual = torch.compile(self.model.visual)

    def after_step(self) -> None:
        """After each optimiser step (e.g. clamping a temperature). Default: nothing."""

    def lr_scale(self, name: str) -> float:
        """The factor on the learning rate of the trainable parameter ``name`` (a name from
        :meth:`trainable_parameters`); the trainer puts each (weight-decay class, scale) in its own group.
        Default: 1."""
        return 1.0


class Method(Trainable):
    """Base of the fine-tuning methods. Subclasses set ``name``, ``Config`` (their options, :mod:`.configs`) and
    implement ``forward(x, y, generator=None, index=None)`` and :meth:`passes`; by default the image tower is
    what is trained and the classifier's head is what is saved.

    ``needs_labels``: the method's loss uses the labels (an unlabelled dataset is refused);
    ``needs_reference``: it needs the frozen starting model (a :class:`FrozenReference`) at construction.
    """

    name = "method"
    needs_labels = True
    needs_reference = False

    def __init__(self, model: ZeroShotClassifier):
        super().__init__()
        self.model = model
        self.image_size = model.image_size

    @classmethod
    def wants_reference(cls, cfg) -> bool:
        """Whether a method with options ``cfg`` needs the frozen starting model (default: ``needs_reference``)."""
        return cls.needs_reference

    def use_fixed_text(self, level: int = 0, logit_scale: float | None = None,
                       reference: nn.Module | None = None, needs_reference: bool = False) -> None:
        """The cosine baselines' shared set-up: the head's fixed level-``level`` text features as a buffer and
        the logit scale (``None``: the head's, i.e. the model's own); optionally the frozen reference."""
        if needs_reference and reference is None:
            raise ConfigError(f"method {self.name!r} needs the frozen reference model")
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
        """The image tower's parameters that require gradients, as ``model.visual.<name>``."""
        visual = getattr(self.model.visual, "_orig_mod", self.model.visual)  # the same names when compiled
        for n, p in visual.named_parameters():
            if p.requires_grad:
                yield f"model.visual.{n}", p

    def reference(self, name: str, fn: ReferenceFn, x: torch.Tensor, y: torch.Tensor | None,
                  index: torch.Tensor | None) -> torch.Tensor:
        """The frozen reference's ``fn(x, y)`` (declared under ``name`` in :meth:`reference_outputs`): the cached
        rows of samples ``index`` when cached, else computed without autograd."""
        return self.reference_cache.get(name, fn, x, y, index)

    def head_state(self) -> dict:
        """What rebuilds the trained classifier's head (saved by :mod:`hirobust.models.rundir`): its default head's
        ``head_state`` (:mod:`hirobust.models.heads`)."""
        return self.model.head().head_state()

    def passes(self, cached: bool = False) -> StepPasses:
        """The encoder passes per image of one training step (:class:`StepPasses`), from the method's config;
        ``cached``: with the frozen reference's outputs cached per sample (in-memory data)."""
        raise NotImplementedError(f"method {self.name!r} does not declare its passes per step")
