"""HiRo's helpers: the index tensors its loss reads from one tree (each level's HNSA candidates and masks, the
tree's edges), and the zero-shot-safety terms (how far W_T and the image features moved from the pretrained ones)."""

from __future__ import annotations

import torch


class TreeIndex:
    """Index tensors of one tree into the stacked node list, with each level's HNSA candidates and masks."""

    def __init__(self, tree, offsets: list[int], hnsa: str):
        self.tree = tree
        self.L = tree.num_levels - 1
        self.offsets = offsets  # offsets[l]: where level l's nodes start in the stacked node list
        self.parent = [tree.parent_index(lvl) for lvl in range(self.L)]
        self.cand, self.mask = [], []
        name_id: dict[str, int] = {}
        ids = [torch.tensor([name_id.setdefault(n, len(name_id)) for n in tree.nodes(lvl)])
               for lvl in range(tree.num_levels)]
        for lvl in range(tree.num_levels):
            levels = [lvl]
            if hnsa in ("both", "down") and lvl >= 1:
                levels.append(lvl - 1)
            if hnsa in ("both", "up") and lvl < self.L:
                levels.append(lvl + 1)
            own = torch.arange(tree.num_nodes(lvl))
            blocks = [torch.zeros(len(own), len(own), dtype=torch.bool)]  # True = not a negative of that row
            for m in levels[1:]:
                if m == lvl - 1:  # children of the row's node are not negatives
                    related = self.parent[lvl - 1][None, :] == own[:, None]
                else:  # nor is its parent
                    related = torch.arange(tree.num_nodes(m))[None, :] == self.parent[lvl][:, None]
                blocks.append(related | (ids[m][None, :] == ids[lvl][:, None]))  # nor a node with the same text
            self.cand.append(torch.cat([torch.arange(tree.num_nodes(m)) + offsets[m] for m in levels]))
            self.mask.append(torch.cat(blocks, dim=1))
        # tree edges (child, parent) in stacked indices, without padding edges (same text on both ends)
        edges = [(offsets[lvl] + j, offsets[lvl + 1] + int(self.parent[lvl][j]))
                 for lvl in range(self.L) for j in range(tree.num_nodes(lvl))
                 if tree.nodes(lvl)[j] != tree.nodes(lvl + 1)[int(self.parent[lvl][j])]]
        self.edges = torch.tensor(edges, dtype=torch.long).view(-1, 2)

    def to(self, device):
        self.parent = [p.to(device) for p in self.parent]
        self.cand = [c.to(device) for c in self.cand]
        self.mask = [m.to(device) for m in self.mask]
        self.edges = self.edges.to(device)
        return self


def projection_params(hyp) -> list[torch.Tensor]:
    """W_T's parameters (the Parameter itself, or the projection module's)."""
    if hyp.proj is not None:
        return [hyp.proj]
    return list(hyp.proj_module.parameters()) if hyp.proj_module is not None else []


def relative_change(params: list[torch.Tensor], anchors: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖p − a‖²_F / Σ‖a‖²_F over matched tensors (the ``text_anchor`` penalty: 0 at the anchor)."""
    num = sum(((p.float() - a.to(p.device).float()) ** 2).sum() for p, a in zip(params, anchors))
    den = sum((a.float() ** 2).sum() for a in anchors).clamp_min(1e-12)
    return num / den.to(num.device)


def feature_drift(feats: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """‖f − f_ref‖² / ‖f_ref‖² per sample, [B, D] x [B, D] -> [B] (the ``image_anchor`` term)."""
    ref = ref.float()
    return ((feats.float() - ref) ** 2).sum(-1) / (ref ** 2).sum(-1).clamp_min(1e-12)
