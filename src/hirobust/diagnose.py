"""Why a trained Poincaré (HiRo) head loses classes it never saw: readout ablations and text-movement measures.

Everything here reads one trained HiRo classifier (a :class:`~hirobust.models.hyperbolic.PoincareHead` per tree)
and changes only how its text side is read, never the image tower, so each readout isolates one suspect of
docs/hiro.md's diagnosis without retraining:

- ``trained``: the head as trained;
- ``pretrained_wt``: W_T replaced by the pretrained model's (α_T, α_I, τ and the image tower kept);
- ``level_depth``: every node's tangent norm replaced by its level's median (angles kept): no per-class depth;
- ``angle``: cosine of the tangent image and text embeddings (norms ignored at every level);
- ``marginal``: a superclass's logit is the log-sum-exp of its leaves' logits (its probability is the sum of
  theirs: the tree, not the superclass prompt, decides); ``poe``: the product of the two superclass experts
  (log-softmax of the direct logits plus that of the marginal ones). The leaf logits are the trained ones.

:func:`text_movement` measures the mechanism directly: per node, the angle between the trained and the pretrained
text embedding W_T·T (degrees) and the change of its hyperbolic depth, grouped by level and seen/unseen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .geometry import poincare as P
from .models.heads import Head, membership, superclass_logits
from .models.hyperbolic import PoincareHead, clip_tangent
from .models.zeroshot import ZeroShotClassifier

READOUTS = ("trained", "pretrained_wt", "level_depth", "angle", "marginal", "poe")


def text_tangents(head: PoincareHead, projection=None) -> torch.Tensor:
    """w = α_T·W_T·T for every node of ``head`` [ΣC_l, D], with the head's own W_T or ``projection``."""
    with torch.no_grad():  # exactly what the head reads (centring, level radii included), W_T swapped if given
        return head.hyp.text_tangent(head.pooled, head.levels, projection).float()


def level_median_norms(w: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """``w`` [N, D] with each row rescaled to the median norm of its level's rows (angles kept), [N, D]."""
    n = w.norm(dim=-1, keepdim=True).clamp_min(P.MIN_NORM)
    med = torch.stack([n[levels == lvl].median() for lvl in range(int(levels.max()) + 1)])
    return w / n * med[levels].unsqueeze(-1)


class ReadoutHead(Head):
    """A trained :class:`PoincareHead` read another way (``readout``, one of :data:`READOUTS`); its node texts are
    fixed at construction, so attacks differentiate through the image side only, as with the trained head."""

    kind = "readout"

    def __init__(self, head: PoincareHead, readout: str, pretrained_projection=None, tree=None):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; known: {', '.join(READOUTS)}")
        if readout == "pretrained_wt" and pretrained_projection is None:
            raise ValueError("readout 'pretrained_wt' needs the pretrained model's text projection")
        if readout in ("marginal", "poe") and tree is None:
            raise ValueError(f"readout {readout!r} needs the tree (each leaf's ancestor at every level)")
        self.readout, self.hyp, self.sizes = readout, head.hyp, list(head.sizes)
        self.members = [membership(tree, lvl) for lvl in range(len(self.sizes))] if tree is not None else []
        w = text_tangents(head, pretrained_projection if readout == "pretrained_wt" else None)
        if readout == "level_depth":
            w = level_median_norms(clip_tangent(w, self.hyp.clip_r), head.levels.to(w.device))
        self.register_buffer("w", w)
        with torch.no_grad():
            self.register_buffer("psi", self.hyp.to_ball(w))

    def node_embeddings(self) -> torch.Tensor:
        return self.psi

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        """Image features [B, D] -> one [B, C_l] logits tensor per level."""
        hyp = self.hyp
        if self.readout == "angle":
            f = features.float() if hyp.img_center is None else features.float() - hyp.img_center
            v = F.normalize(f, dim=-1)
            logits = v @ F.normalize(self.w, dim=-1).t() / hyp.tau.detach()
        else:
            logits = -P.pairwise_dist(hyp.image(features), self.psi, hyp.c) / hyp.tau.detach()
        levels = list(logits.split(self.sizes, dim=-1))
        if self.readout in ("marginal", "poe"):
            levels[1:] = [superclass_logits(z, levels[0], self.members[lvl].to(z.device), self.readout)
                          for lvl, z in enumerate(levels[1:], start=1)]
        return levels


def readout_classifier(clf: ZeroShotClassifier, readout: str, pretrained_projection=None, forest=None
                       ) -> ZeroShotClassifier:
    """``clf`` (a trained HiRo classifier) with every Poincaré head read as ``readout``; the image tower shared
    (``forest``: the heads' trees, for the tree readouts)."""
    trees = {t.name: t for t in forest} if forest is not None else {}
    heads = {name: ReadoutHead(h, readout, pretrained_projection, trees.get(name)) for name, h in clf.heads.items()}
    return ZeroShotClassifier(clf.visual, clf.mean.flatten().tolist(), clf.std.flatten().tolist(), heads,
                              clf.image_size, clf.text_spec)


@torch.no_grad()
def text_movement(head: PoincareHead, pretrained_projection, seen_leaves: Sequence[str], tree) -> dict:
    """Per level and group (seen / unseen): mean angle (degrees) between trained and pretrained W_T·T, and mean
    hyperbolic depth d_c(0, ψ) under each (the trained α_T for both, so only W_T differs).

    A level-l node is *seen* when at least one of its leaves was fine-tuned on."""
    hyp = head.hyp
    w1 = text_tangents(head)
    w0 = text_tangents(head, pretrained_projection)
    cos = F.cosine_similarity(w1, w0, dim=-1).clamp(-1, 1)
    angle = torch.rad2deg(torch.acos(cos))
    depth = lambda w: 2 / math.sqrt(hyp.c) * torch.atanh(  # noqa: E731
        (math.sqrt(hyp.c) * hyp.to_ball(w).norm(dim=-1)).clamp(max=1 - 1e-5))
    d1, d0 = depth(w1), depth(w0)
    seen = set(seen_leaves)
    out, start = {}, 0
    for lvl, n in enumerate(head.sizes):
        anc = tree.ancestor_index(lvl)
        node_seen = torch.zeros(n, dtype=torch.bool)
        for i, leaf in enumerate(tree.leaves):
            if leaf in seen:
                node_seen[int(anc[i])] = True
        row = {}
        for group, mask in (("seen", node_seen), ("unseen", ~node_seen)):
            idx = torch.nonzero(mask).flatten() + start
            if idx.numel() == 0:
                continue
            row[group] = {"nodes": int(idx.numel()), "angle_deg": float(angle[idx].mean()),
                          "depth_trained": float(d1[idx].mean()), "depth_pretrained_wt": float(d0[idx].mean()),
                          "per_node": {tree.nodes(lvl)[int(i) - start]: {
                              "angle_deg": round(float(angle[i]), 2), "depth_trained": round(float(d1[i]), 3),
                              "depth_pretrained_wt": round(float(d0[i]), 3)} for i in idx}}
        out[str(lvl)] = row
        start += n
    return out
