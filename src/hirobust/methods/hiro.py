"""HiRo: hierarchical adversarial fine-tuning in the Poincaré ball (docs/method.md §3).

Per batch: hyperbolic image embeddings φ (leaf level: one per image); parent embeddings by Einstein
midpoints (HypAvg) of the members present, level by level; HITA: at every level l, the logits
−d_c(φ^l, ψ_k)/τ over the level-l nodes plus the HNSA negatives (level l−1 and l+1 nodes that are neither the
node's children nor its parent), weighted by ω_l = 1 − l/(L+1). One image perturbation δ_X and one text
perturbation δ_T (added to the tangent text embeddings w) maximise that loss jointly (the universal
perturbation). The outer loss adds L_vic (images near their class text) and L_gap (parents shallower than
children, for text and for image groups). A forest sums the trees' losses, the leaf term counted once.

Diagnostics (detached scalars in ``forward``'s dict, logged per step by the trainer; see :meth:`HiRo.diagnostics`):
``depth_text_L{l}``, ``depth_img_L{l}`` (mean hyperbolic depth d_c(0, ·) of the first tree's clean level-l texts and
of the level-l image embeddings the loss used), ``gap_label_active``, ``gap_intra_active`` (fraction of the first
tree's L_gap hinges that are > 0), ``alpha_img``, ``alpha_txt``, ``tau`` and ``delta_t_rel`` (mean ‖δ_T‖/‖w‖).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..attacks import ThreatModel, attack_jointly
from ..errors import ConfigError
from ..geometry import poincare as P
from ..hierarchy import Forest
from ..models.hyperbolic import HyperbolicEmbedding, poincare_classifier, pooled_text
from ..models.zeroshot import ZeroShotClassifier, text_projection_of
from .base import Method, StepPasses
from .configs import HNSA, PERTURBATIONS, HiRoConfig  # noqa: F401 (re-exported)
from .hiro_tree import TreeIndex, feature_drift, projection_params, relative_change


class HiRo(Method):
    name = "hiro"
    Config = HiRoConfig
    needs_first_batch = True  # α_I and ζ_vic are initialised from the first batch (:meth:`prepare`)

    @classmethod
    def wants_reference(cls, cfg: HiRoConfig) -> bool:
        return cfg.image_anchor > 0  # the frozen starting model's image features anchor the image tower

    def __init__(self, model: ZeroShotClassifier, forest: Forest, cfg: HiRoConfig, reference=None, clip=None):
        if clip is None:
            raise ConfigError("HiRo needs the open_clip model (its text projection W_T is trained)")
        for tree in forest:
            if tree.num_levels < 2:
                raise ConfigError(f"HiRo needs a hierarchy with at least 2 levels (leaves and one superclass level); "
                                 f"tree {tree.name!r} has {tree.num_levels}")
        proj = text_projection_of(clip.model)
        if proj is None:
            raise ConfigError(f"model {clip.name!r} has no text projection W_T for HiRo to train")
        if model.text_spec is None:
            raise ConfigError("HiRo needs the classifier's prompt templates (build it with build_cosine_classifier)")
        pooled = pooled_text(clip, forest, model.text_spec)
        n_levels = max(t.num_levels for t in forest)
        hyp = HyperbolicEmbedding(proj, cfg.curvature, cfg.clip_r, tau=cfg.tau, tau_range=(cfg.tau_min, cfg.tau_max),
                                  text_depth=cfg.text_depth, num_levels=n_levels,
                                  superclass_readout=cfg.superclass_readout)
        super().__init__(poincare_classifier(model.visual, model.mean.flatten().tolist(), model.std.flatten().tolist(),
                                             model.image_size, pooled, hyp, model.text_spec, forest))
        self.cfg = cfg
        self.hyp = hyp
        if cfg.image_anchor > 0 and reference is None:
            raise ConfigError("HiRo with image_anchor > 0 needs the frozen reference model")
        self.reference_model = reference
        # the joint attack: ε_X, α_X on pixels; ε_T, α_T on the tangent texts (step sizes default to the radius)
        self.threat = ThreatModel(cfg.eps, cfg.steps, cfg.eps if cfg.alpha is None else cfg.alpha)
        self.text_threat = ThreatModel(cfg.text_eps, cfg.steps, cfg.text_eps if cfg.text_alpha is None else
                                       cfg.text_alpha)
        self.forest = forest
        if isinstance(proj, torch.nn.Parameter):
            proj.requires_grad_(cfg.train_text_projection)
        # stacked node list: the shared leaves once, then every tree's levels >= 1
        stacked = [pooled[forest[0].name][0]]
        self.trees: list[TreeIndex] = []
        n_leaves = stacked[0].shape[0]
        pos = n_leaves
        levels = [torch.zeros(n_leaves, dtype=torch.long)]
        for tree in forest:
            offsets = [0]
            for lvl in range(1, tree.num_levels):
                offsets.append(pos)
                stacked.append(pooled[tree.name][lvl])
                levels.append(torch.full((tree.num_nodes(lvl),), lvl, dtype=torch.long))
                pos += tree.num_nodes(lvl)
            self.trees.append(TreeIndex(tree, offsets, cfg.hnsa))
        self.register_buffer("pooled", torch.cat(stacked).float(), persistent=False)
        self.register_buffer("node_levels", torch.cat(levels), persistent=False)  # each stacked node's level [N]
        self.register_buffer("zeta_vic", torch.tensor(float("nan") if cfg.zeta_vic is None else cfg.zeta_vic))
        self.zeta_gap = cfg.zeta_gap if cfg.zeta_gap is not None else 0.05 / math.sqrt(cfg.curvature)
        self._ready = False
        with torch.no_grad():  # the median leaf text at depth init_depth: d(0, exp₀ w) = 2‖w‖
            if cfg.center:  # the seen leaves' mean prompt, before W_T (W_T is linear: centring commutes with it)
                self.hyp.set_centers(None, self.pooled[:n_leaves].mean(0))
            base = self.pooled - self.hyp.txt_center if cfg.center else self.pooled
            norms = self.hyp.project_text(base).norm(dim=-1)
            med = norms[:n_leaves].median()
            self.hyp.log_alpha_txt.fill_(math.log(cfg.init_depth / 2 / float(med.clamp_min(1e-6))))
            if self.hyp.log_level_radius is not None:  # each level's radius: its median fitted norm at init
                for lvl in range(n_levels):
                    lv = norms[self.node_levels == lvl].median().clamp_min(1e-6) * cfg.init_depth / 2 / med
                    self.hyp.log_level_radius[lvl] = float(lv.clamp_min(1e-6).log())
        # the pretrained W_T, for the anchor penalty (a copy: W_T itself is trained)
        anchor = [p.detach().clone() for p in self._projection_params()] if cfg.text_anchor > 0 else []
        self._anchor = anchor
        if not cfg.learn_tau:
            self.hyp.log_tau.requires_grad_(False)

    def _projection_params(self) -> list[torch.Tensor]:
        return projection_params(self.hyp)

    def anchor_penalty(self) -> torch.Tensor:
        """How far W_T moved from its pretrained value (0 without ``text_anchor``): :func:`relative_change`."""
        return relative_change(self._projection_params(), self._anchor) if self._anchor else self.zeta_vic.new_zeros(())

    # ------------------------------------------------------------------ state
    def trainable_parameters(self):
        yield from super().trainable_parameters()
        if self.hyp.proj is not None and self.hyp.proj.requires_grad:
            yield "hyp.proj", self.hyp.proj
        elif self.hyp.proj_module is not None and self.cfg.train_text_projection:
            for n, p in self.hyp.proj_module.named_parameters():
                yield f"hyp.proj_module.{n}", p
        for n in ("log_alpha_img", "log_alpha_txt", "log_tau", "log_level_radius"):
            p = getattr(self.hyp, n)
            if p is not None and p.requires_grad:
                yield f"hyp.{n}", p

    def trainable_state(self):
        yield from super().trainable_state()
        yield "zeta_vic", self.zeta_vic
        if self.cfg.center and self.hyp.img_center is not None:  # fixed on the first batch: a resume needs it
            yield "img_center", self.hyp.img_center

    def load_trainable_state(self, state):
        state = dict(state)
        with torch.no_grad():
            self.zeta_vic.copy_(state.pop("zeta_vic"))
            if "img_center" in state:
                self.hyp.set_centers(state.pop("img_center"), self.hyp.txt_center)
        super().load_trainable_state(state)
        self._ready = True

    def after_step(self):
        self.hyp.clamp_()

    def lr_scale(self, name: str) -> float:
        """``lr_scale_head`` for α_I, α_T, τ; ``lr_scale_text`` for W_T; 1 for the image tower."""
        if name in ("hyp.log_alpha_img", "hyp.log_alpha_txt", "hyp.log_tau", "hyp.log_level_radius"):
            return self.cfg.lr_scale_head
        return self.cfg.lr_scale_text if name.startswith("hyp.proj") else 1.0

    def passes(self, cached: bool = False) -> StepPasses:
        """One joint attack and one encoding per step; ``per_level``: one of each per level; ``image_anchor``: the
        frozen model's clean features (none when cached)."""
        n = self.trees[0].L + 1 if self.cfg.perturbation == "per_level" else 1
        return StepPasses(self.cfg.steps * n, n, 0 if cached or self.cfg.image_anchor <= 0 else 1)

    def reference_outputs(self) -> dict:
        return {"f_orig": self._f_orig} if self.cfg.image_anchor > 0 else {}

    def _f_orig(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.reference_model.image_features(x)

    @torch.no_grad()
    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Data-dependent initialisation on the first batch: α_I puts the median image at depth ``init_depth``;
        ζ_vic defaults to the median clean image-to-class-text distance."""
        f = self.model.image_features(x).float()
        if self.cfg.center:
            self.hyp.set_centers(f.mean(0), self.hyp.txt_center)
        med = (f - self.hyp.img_center if self.cfg.center else f).norm(dim=-1).median().clamp_min(1e-6)
        self.hyp.log_alpha_img.fill_(math.log(self.cfg.init_depth / 2 / float(med)))
        if self.cfg.zeta_vic is None:
            psi = self.hyp.text(self.pooled, self.node_levels)
            self.zeta_vic.fill_(float(P.dist(self.hyp.image(f), psi[y], self.hyp.c).median()))
        self._ready = True

    # ------------------------------------------------------------------ losses
    def _weights(self, L: int) -> list[float]:
        if self.cfg.level_weights == "uniform":
            return [1.0] * (L + 1)
        return [1 - lvl / (L + 1) for lvl in range(L + 1)]

    def batch_index(self, y: torch.Tensor) -> list[dict]:
        """What the loss takes from the labels alone, per tree: every image's node at each level, and the batch's
        groups at each level l ≥ 1 (their node ids and the member→group index of level l − 1). One step computes
        it once for the attack's iterations and the outer loss: ``torch.unique`` synchronises with the GPU, and it
        stays out of the attack loop."""
        out = []
        for t in self.trees:
            labels = [y]
            for lvl in range(1, t.L + 1):
                labels.append(t.parent[lvl - 1][labels[-1]])
            groups, node = [], y
            if self.cfg.hita:
                for lvl in range(1, t.L + 1):
                    uniq, inv = torch.unique(t.parent[lvl - 1][node], return_inverse=True)
                    groups.append((uniq, inv))
                    node = uniq
            out.append({"labels": labels, "groups": groups})
        return out

    def _groups(self, phi0: torch.Tensor, y: torch.Tensor, groups: list) -> list:
        """Per level: (embeddings [G_l, D], node ids [G_l], member->group index of the level below)."""
        out = [(phi0, y, None)]
        emb = phi0
        for uniq, inv in groups:
            emb = P.group_midpoint(emb, inv, uniq.shape[0], self.hyp.c)
            out.append((emb, uniq, inv))
        return out

    def _level_ce(self, emb, node, psi, t: TreeIndex, lvl: int) -> torch.Tensor:
        cand = t.cand[lvl]
        logits = self.hyp.logits(emb, psi[cand]).masked_fill(t.mask[lvl][node], float("-inf"))
        return F.cross_entropy(logits, node)  # the level's own nodes come first in cand: target = node id

    def level_terms(self, phi0: torch.Tensor, psi: torch.Tensor, y: torch.Tensor,
                    index: list[dict] | None = None) -> tuple[list, list]:
        """(CE per level summed over trees [L+1] (leaf once unless forest_leaf_once=False), groups per tree);
        ``index`` is ``batch_index(y)`` (computed here when not given)."""
        index = self.batch_index(y) if index is None else index
        n_levels = max(t.L for t in self.trees) + 1
        ce = [phi0.new_zeros(()) for _ in range(n_levels)]
        weighted = [phi0.new_zeros(()) for _ in range(n_levels)]
        groups = []
        for i, (t, ix) in enumerate(zip(self.trees, index)):
            g = self._groups(phi0, y, ix["groups"]) if self.cfg.hita else [(phi0, y, None)]
            groups.append(g)
            w = self._weights(t.L)
            for lvl, (emb, node, _) in enumerate(g):
                if lvl == 0 and i > 0 and self.cfg.forest_leaf_once:
                    continue
                term = self._level_ce(emb, node, psi, t, lvl)
                if lvl > 0 and self.cfg.image_levels:  # the zero-shot task itself: single images at level l
                    term = term + self._level_ce(phi0, ix["labels"][lvl], psi, t, lvl)
                ce[lvl] = ce[lvl] + term
                weighted[lvl] = weighted[lvl] + w[lvl] * term
        return weighted, groups

    def _psi(self, w: torch.Tensor) -> torch.Tensor:
        return self.hyp.to_ball(w)

    def _text_base(self) -> torch.Tensor:
        return self.hyp.text_tangent(self.pooled, self.node_levels)  # [N, D], differentiable in W_T and α_T

    def _attack(self, x, y, w, generator, level: int | None, index: list[dict] | None = None):
        """The adversarial (x̂, ŵ) maximising the HITA loss (all levels, or one ``level``); ``index`` is
        ``batch_index(y)`` (computed here when not given)."""
        c = self.cfg
        index = self.batch_index(y) if index is None else index
        shared = c.text_delta == "shared"
        scale = self._text_scale(w.detach())  # the attack runs on w / scale: ε_T, α_T in those units
        text = w.detach() / scale if not shared else w.detach()[:1] * 0

        def objective(xa, ta):
            wa = w.detach() + ta * scale if shared else ta * scale
            phi0 = self.hyp.image(self.model.image_features(xa))
            terms, _ = self.level_terms(phi0, self._psi(wa), y, index)
            return terms[level] if level is not None else sum(terms)

        was = self.training
        self.model.eval()
        xa, ta = attack_jointly(objective, [x, text], [self.threat, self.text_threat], boxes=[(0.0, 1.0), None],
                                generator=generator)
        self.model.train(was)
        delta_t = (ta - text) * scale if not shared else ta * scale
        return xa, delta_t.detach()

    def _text_scale(self, w: torch.Tensor) -> torch.Tensor | float:
        """The unit of δ_T's L∞ budget and step: 1 (``text_eps_mode=absolute``), or each node's RMS coordinate
        ‖w_n‖₂/√D, [N, 1] (``relative``; ``text_delta=shared``: the mean over nodes, [1, 1]). With per-node units,
        |δ_n,i| ≤ ε_T·‖w_n‖₂/√D gives ‖δ_n‖₂ ≤ ε_T·‖w_n‖₂: ε_T is the largest relative L2 size of δ_n."""
        if self.cfg.text_eps_mode == "absolute":
            return 1.0
        rms = w.norm(dim=-1, keepdim=True).clamp_min(P.MIN_NORM) / math.sqrt(w.shape[-1])
        return rms.mean(0, keepdim=True) if self.cfg.text_delta == "shared" else rms

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator=None, index=None) -> dict:
        c = self.cfg
        if not self._ready:  # fresh run: data-dependent initialisation on the first batch
            self.prepare(x, y)
        w = self._text_base()
        bix = self.batch_index(y)  # once per step, shared by the attack's iterations and the outer loss
        if c.perturbation == "per_level":
            return self._forward_per_level(x, y, w, generator, bix)
        if c.perturbation == "none" or (c.eps == 0 and c.text_eps == 0):
            xa, dt = x, torch.zeros_like(w)
        else:
            xa, dt = self._attack(x, y, w, generator, 0 if c.perturbation == "leaf" else None, bix)
        feats = self.model.image_features(xa)
        phi0 = self.hyp.image(feats)
        psi = self._psi(w + dt)
        terms, groups = self.level_terms(phi0, psi, y, bix)
        out = self._outer(terms, groups, phi0, psi, y, w, dt)
        if c.image_anchor > 0:
            drift = feature_drift(feats, self.reference("f_orig", self._f_orig, x, y, index))
            out["loss"] = out["loss"] + c.image_anchor * drift.mean()
            out["image_anchor"] = drift.mean().detach()
        return out

    def _forward_per_level(self, x, y, w, generator, bix) -> dict:
        """Ablation: one perturbation per level, each maximising that level's term; the outer level-l term is
        computed on x + δ_l ((L+1) attacks and (L+1) encodings: the slow variant)."""
        n_levels = max(t.L for t in self.trees) + 1
        total, first = None, None
        for lvl in range(n_levels):
            xa, dt = self._attack(x, y, w, generator, lvl, bix)
            phi0 = self.hyp.image(self.model.image_features(xa))
            psi = self._psi(w + dt)
            terms, groups = self.level_terms(phi0, psi, y, bix)
            total = terms[lvl] if total is None else total + terms[lvl]
            if lvl == 0:
                first = (terms, groups, phi0, psi, dt)
        terms, groups, phi0, psi, dt = first
        return self._outer([total] + [t * 0 for t in terms[1:]], groups, phi0, psi, y, w, dt)

    def _outer(self, terms, groups, phi0, psi, y, w, dt) -> dict:
        """The outer loss and the step's scalars: ``w`` [N, D] the clean tangent texts, ``dt`` their δ_T."""
        c = self.cfg
        hita = sum(terms)
        vic = F.relu(P.dist(phi0, psi[y], self.hyp.c) - self.zeta_vic).mean()
        label = [self._label_hinges(psi, t.edges) for t in self.trees]
        gap_label = torch.cat(label).mean() if sum(len(h) for h in label) else hita * 0
        intra = [self._intra_hinges(g) for g in groups]
        gap_intra = _mean_or_zero(torch.cat(intra), self.zeta_vic)
        anchor = self.anchor_penalty() if c.text_anchor > 0 else None
        loss = hita + c.lambda_vic * vic + c.lambda_gap * (gap_label + gap_intra)
        loss = loss + c.text_anchor * anchor if anchor is not None else loss
        out = {"loss": loss, "hita": hita.detach(), "vic": vic.detach(), "gap_label": gap_label.detach(),
               "gap_intra": gap_intra.detach(), "tau": self.hyp.tau.detach()}
        if anchor is not None:
            out["text_anchor"] = anchor.detach()
        with torch.no_grad():
            out.update(self.diagnostics(w, dt, groups[0], label[0], intra[0]))
        return out

    def _label_hinges(self, psi: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """L_gap^Label's hinges max(0, ‖ψ_parent‖ − ‖ψ_child‖ + ζ_gap), one per tree edge [E]."""
        norms = psi.norm(dim=-1)
        return F.relu(norms[edges[:, 1]] - norms[edges[:, 0]] + self.zeta_gap)

    def _intra_hinges(self, tree_groups) -> torch.Tensor:
        """One tree's L_gap^Intra hinges max(0, ‖φ^{l+1}_g‖ − ‖φ^l_m‖ + ζ_gap) over members m of groups g, [H];
        groups with a single member are left out (their midpoint is the member itself: the hinge would be a
        constant ζ_gap)."""
        hinges = [self.zeta_vic.new_zeros(0)]
        for lvl in range(1, len(tree_groups)):
            below, (emb, _, inv) = tree_groups[lvl - 1][0], tree_groups[lvl]
            size = torch.bincount(inv, minlength=emb.shape[0])
            keep = size[inv] > 1
            h = F.relu(emb.norm(dim=-1)[inv] - below.norm(dim=-1) + self.zeta_gap)
            hinges.append(h[keep])
        return torch.cat(hinges)

    def _depth(self, p: torch.Tensor) -> torch.Tensor:
        """Mean hyperbolic distance from the origin, (2/√c)·artanh(√c‖p‖), of the rows of p [n, D] (0 if n = 0)."""
        return _mean_or_zero(P.dist(torch.zeros_like(p), p, self.hyp.c), p)

    def diagnostics(self, w, dt, tree_groups, label_hinges, intra_hinges) -> dict:
        """Detached per-step scalars, from tensors the step already has (no encoder pass), for the first tree:

        - ``depth_text_L{l}``: mean depth d_c(0, ψ) of its level-l node texts, clean (ψ = ball(w), without δ_T);
        - ``depth_img_L{l}``: mean depth of the level-l image embeddings the loss used (level 0: the adversarial
          images φ0; l ≥ 1: the HypAvg group embeddings; 0 when the level has no groups, e.g. ``hita=False``);
        - ``gap_label_active``, ``gap_intra_active``: the fraction of its L_gap^Label (tree edges) and L_gap^Intra
          (members of groups of two or more) hinges that are > 0 (0 when there are none);
        - ``alpha_img``, ``alpha_txt``: α_I, α_T; ``delta_t_rel``: mean over all nodes of ‖δ_T,n‖/‖w_n‖."""
        t = self.trees[0]
        psi = self._psi(w)
        out = {}
        for lvl in range(t.L + 1):
            start = t.offsets[lvl]
            out[f"depth_text_L{lvl}"] = self._depth(psi[start : start + t.tree.num_nodes(lvl)])
            emb = tree_groups[lvl][0] if lvl < len(tree_groups) else psi[:0]
            out[f"depth_img_L{lvl}"] = self._depth(emb.detach())
        out["gap_label_active"] = _mean_or_zero((label_hinges > 0).float(), psi)
        out["gap_intra_active"] = _mean_or_zero((intra_hinges > 0).float(), psi)
        out["alpha_img"] = self.hyp.log_alpha_img.exp()
        out["alpha_txt"] = self.hyp.log_alpha_txt.exp()
        rel = dt.expand_as(w).norm(dim=-1) / w.norm(dim=-1).clamp_min(P.MIN_NORM)
        out["delta_t_rel"] = rel.mean()
        return {k: v.detach().float() for k, v in out.items()}

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        for t in self.trees:
            t.to(self.pooled.device)
        return out


def _mean_or_zero(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The mean of ``v``, or a zero scalar (on ``like``'s device) when ``v`` is empty."""
    return v.mean() if v.numel() else like.new_zeros(())
