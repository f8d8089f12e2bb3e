"""Per-image results as a report stores them: the evaluated subsets' leaf labels (base64 int32) and correctness
bits per level (packed, :func:`hirobust.stats.pack_bits`). The evaluator writes them; comparisons and the study
read them back to pair models image by image."""

from __future__ import annotations

import torch

from .stats import pack_bits, unpack_bits


def level_bits(mat: torch.Tensor) -> dict:
    """[N, L] booleans -> {level: packed bits}."""
    return {str(b): pack_bits(mat[:, b]) for b in range(mat.shape[1])}


def labels_text(y: torch.Tensor) -> str:
    """Leaf labels [N] as base64 of int32 (a report's per-image label encoding)."""
    import base64

    import numpy as np

    return base64.b64encode(y.cpu().numpy().astype(np.int32).tobytes()).decode("ascii")


def labels_from_text(text: str) -> torch.Tensor:
    """Inverse of the per-image label encoding of a report."""
    import base64

    import numpy as np

    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.int32).astype(np.int64))


def subset_record(n: int, y: torch.Tensor, right: torch.Tensor) -> dict:
    """A report's record of an evaluated subset: its size, leaf labels and clean correctness per level."""
    return {"n": n, "labels": labels_text(y), "right": level_bits(right)}


def subset_of(entry: dict, name: str) -> tuple[torch.Tensor, dict]:
    """(leaf labels [N], {level: clean correctness [N]}) of a model entry's evaluated subset ``name`` (``clean``,
    ``robust``, ``autoattack``, ``sweep``)."""
    sub = entry["per_image"][name]
    return labels_from_text(sub["labels"]), {b: torch.from_numpy(unpack_bits(t, sub["n"]))
                                             for b, t in sub["right"].items()}


def correct(entry: dict, attack: str, a: int | str, b: int | str, eps: float | None = None) -> torch.Tensor:
    """Per-image robust correctness [N] (right clean and attacked, ``ROBUST_DEFINITION``) at read level ``b``
    under the level-``a`` ``attack`` (``"clean"``: clean correctness on the attacked subset; ``"sweep"`` with
    ``eps``: the ε sweep), decoded from the report's packed bits."""
    pi = entry["per_image"]
    if attack == "clean":
        return torch.from_numpy(unpack_bits(pi["robust"]["right"][str(b)], pi["robust"]["n"]))
    if attack == "sweep":
        return torch.from_numpy(unpack_bits(pi["sweep"]["levels"][str(a)][f"{eps:.6g}"][str(b)], pi["sweep"]["n"]))
    at = pi["attacks"][attack]
    return torch.from_numpy(unpack_bits(at["levels"][str(a)][str(b)], pi[at["subset"]]["n"]))
