"""Zero-shot heads by kind: the base class every head implements, the text spec heads are built from, and the
registry :mod:`.rundir` uses to save a head and rebuild it from a run directory.

A head maps image features [B, D] to one logits tensor [B, C_l] per level of one tree, against node embeddings
computed from text once. Adding a head = one :class:`Head` subclass (with ``kind``, ``node_embeddings``,
``head_state`` and ``build_classifier``) + one line in ``_HEADS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

# kind -> (module of hirobust.models, class): imported on first use (the head modules import this one)
_HEADS = {"cosine": ("zeroshot", "CosineHead"), "poincare": ("hyperbolic", "PoincareHead")}


@dataclass(frozen=True)
class TextSpec:
    """The text a classifier's node embeddings were made from: prompt ``templates`` (each with one ``{}``) and
    ``prompt_names`` (node name -> the text put in the templates, where it differs)."""

    templates: tuple[str, ...]
    prompt_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "templates", tuple(self.templates))
        object.__setattr__(self, "prompt_names", dict(self.prompt_names or {}))

    def names(self, nodes: Sequence[str]) -> list[str]:
        """The prompt name of each node."""
        return [self.prompt_names.get(n, n) for n in nodes]


class Head(nn.Module):
    """Base of the zero-shot heads: logits at every level of one tree. ``sizes[l]`` is the number of level-l
    nodes; :meth:`node_embeddings` holds every level's node embeddings stacked, [ΣC_l, D]."""

    kind = "head"
    sizes: list[int]

    def node_embeddings(self) -> torch.Tensor:
        """Every node's embedding, level 0 first, [ΣC_l, D]."""
        raise NotImplementedError

    def level_text(self, level: int) -> torch.Tensor:
        """The level-``level`` nodes' embeddings, [C_level, D]."""
        start = sum(self.sizes[:level])
        return self.node_embeddings()[start : start + self.sizes[level]]

    def head_state(self) -> dict:
        """What rebuilds this head beside the model's weights and the text spec: ``{"head": kind, <JSON
        scalars>, "tensors": {name: tensor} (optional, saved as safetensors)}``."""
        raise NotImplementedError

    @classmethod
    def build_classifier(cls, clip, forest, text: TextSpec, state: dict, tensors: dict[str, torch.Tensor],
                         where: str = "the run directory"):
        """A ``ZeroShotClassifier`` over ``clip`` with this kind of head for every tree of ``forest``, rebuilt from
        a saved :meth:`head_state` (``state``: its JSON part, ``tensors``: its tensors; ``where`` names the file in
        error messages)."""
        raise NotImplementedError


def head_class(kind: str) -> type[Head]:
    """The head class registered as ``kind``; ``ValueError`` naming the known kinds otherwise."""
    if kind not in _HEADS:
        raise ConfigError(f"unknown head kind {kind!r}; known: {', '.join(_HEADS)}")
    module, name = _HEADS[kind]
    return getattr(importlib.import_module(f".{module}", __package__), name)


def head_kinds() -> list[str]:
    return list(_HEADS)


SUPERCLASS_READOUTS = ("direct", "marginal", "poe")


def membership(tree, level: int) -> torch.Tensor:
    """[C_0, C_level] one-hot float matrix: leaf i belongs to level-``level`` node j."""
    anc = tree.ancestor_index(level)
    return torch.nn.functional.one_hot(anc, tree.num_nodes(level)).float()


def superclass_logits(direct: torch.Tensor, leaf: torch.Tensor, member: torch.Tensor, mode: str) -> torch.Tensor:
    """Level-l logits [B, C_l] from the node prompts' own logits ``direct`` [B, C_l] and the leaf logits ``leaf``
    [B, C_0] (``member``: :func:`membership`): ``direct``; ``marginal``, log Σ_{leaves of the node} exp(leaf logit)
    (the node's probability is the sum of its leaves'); ``poe``, log-softmax(direct) + log-softmax(marginal)."""
    if mode == "direct":
        return direct
    m = leaf.max(-1, keepdim=True).values
    marg = ((leaf - m).exp() @ member.to(leaf.dtype)).clamp_min(1e-30).log() + m
    return marg if mode == "marginal" else F.log_softmax(direct, -1) + F.log_softmax(marg, -1)
