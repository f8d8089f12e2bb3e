"""Clean and attacked accuracy at every level, level-targeted attacks, transfer success rates.

For a classifier and a dataset: clean accuracy at every read level b; for every attack level a, a PGD
attack maximising the level-a cross-entropy, read at every level b (robust accuracy [a][b]); and the
transfer success rate TSR(a->b) = P[level-b prediction wrong on x + δ_a | level-b prediction right on x].
Robust numbers are computed on a fixed, seeded subset (the same images for every model) and checked
for sanity (attacked accuracy never above clean accuracy on the same images).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .attacks import level_objective, pgd
from .data import ZSDataset
from .hierarchy import Hierarchy


@dataclass
class EvalConfig:
    eps: float = 1 / 255
    steps: int = 20
    alpha: float | None = None  # default eps / 4
    norm: str = "linf"
    objective: str = "ce"  # ce | cw
    attack_levels: list[int] | None = None  # None: every level
    robust_samples: int | None = 1000  # seeded subset for attacks (None: all)
    clean_samples: int | None = None  # None: the whole split
    eps_sweep: list[float] = field(default_factory=list)  # extra eps for a leaf-level attack (report's sweep)
    sweep_samples: int | None = 500
    batch_size: int = 500
    seed: int = 0
    amp: str = "off"  # attacks in float32 unless shown equal (METHOD.md §5)

    def __post_init__(self):
        if not self.eps >= 0 or any(not e >= 0 for e in self.eps_sweep):
            raise ValueError(f"eps must be >= 0 (got eps={self.eps}, eps_sweep={self.eps_sweep})")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")


@torch.no_grad()
def predict(model, data: ZSDataset, tree: str | None, batch_size: int, device, desc: str = "clean",
            progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions [N, levels], leaf labels [N]) of clean images."""
    preds, labels = [], []
    n_batches = -(-len(data) // batch_size)
    for x, y in tqdm(data.batches(batch_size, image_size=model.image_size), total=n_batches, desc=desc,
                     disable=not progress, leave=False, dynamic_ncols=True):
        logits = model(x.to(device), tree=tree)
        preds.append(torch.stack([z.argmax(1) for z in logits], 1).cpu())
        labels.append(y)
    return torch.cat(preds), torch.cat(labels)


def attacked_predictions(model, data: ZSDataset, hier: Hierarchy, level: int, eps: float, cfg: EvalConfig, device,
                         desc: str, progress: bool = True) -> torch.Tensor:
    """Predictions [N, levels] on images attacked at ``level`` (maximising that level's objective)."""
    preds = []
    n_batches = -(-len(data) // cfg.batch_size)
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed * 7 + level)
    for x, y in tqdm(data.batches(cfg.batch_size, image_size=model.image_size), total=n_batches, desc=desc,
                     disable=not progress, leave=False, dynamic_ncols=True):
        x, y = x.to(device), y.to(device)
        loss_fn = level_objective(model, level, hier.labels(y, level), cfg.objective, tree=hier.name)
        x_adv = pgd(loss_fn, x, eps, cfg.steps, cfg.alpha, cfg.norm, random_start=True, generator=g)
        with torch.no_grad():
            logits = model(x_adv, tree=hier.name)
        preds.append(torch.stack([z.argmax(1) for z in logits], 1).cpu())
    return torch.cat(preds)


def level_labels(hier: Hierarchy, y: torch.Tensor) -> torch.Tensor:
    return torch.stack([hier.labels(y, lvl) for lvl in range(hier.num_levels)], 1)


def evaluate_model(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device="cpu", progress=True) -> dict:
    """The report entry of one model: clean, robust[a][b], transfer_success[a][b], sample counts, checks."""
    device = torch.device(device)
    model.eval().to(device)
    t0 = time.perf_counter()
    L = hier.num_levels
    clean_data = data.seeded_subset(cfg.clean_samples, cfg.seed)
    pred, y = predict(model, clean_data, hier.name, cfg.batch_size, device, progress=progress)
    truth = level_labels(hier, y)
    out: dict = {"clean": {str(b): float((pred[:, b] == truth[:, b]).float().mean()) for b in range(L)}}
    rob_data = data.seeded_subset(cfg.robust_samples, cfg.seed)
    rpred, ry = predict(model, rob_data, hier.name, cfg.batch_size, device, progress=False)
    rtruth = level_labels(hier, ry)
    right = rpred == rtruth  # [N, L] clean correctness on the attacked subset
    out["clean_on_robust_subset"] = {str(b): float(right[:, b].float().mean()) for b in range(L)}
    out["robust"], out["transfer_success"] = {}, {}
    levels = cfg.attack_levels if cfg.attack_levels is not None else list(range(L))
    raw = {}
    for a in levels:
        adv = attacked_predictions(model, rob_data, hier, a, cfg.eps, cfg, device, f"PGD-{cfg.steps} level {a}",
                                   progress)
        adv_right = adv == rtruth
        raw[str(a)] = float(adv_right[:, a].float().mean())
        # robust = right on the clean image and on the attacked one (the clean image is in the ε-ball too)
        out["robust"][str(a)] = {str(b): float((right[:, b] & adv_right[:, b]).float().mean()) for b in range(L)}
        flipped = right & ~adv_right
        out["transfer_success"][str(a)] = {
            str(b): float(flipped[:, b].sum() / right[:, b].sum()) if right[:, b].any() else float("nan")
            for b in range(L)
        }
    if cfg.eps_sweep:
        sweep_data = data.seeded_subset(cfg.sweep_samples, cfg.seed)
        _, sy = predict(model, sweep_data, hier.name, cfg.batch_size, device, progress=False)
        struth = level_labels(hier, sy)
        out["eps_sweep"] = {}
        for eps in cfg.eps_sweep:
            adv = attacked_predictions(model, sweep_data, hier, 0, eps, cfg, device, f"sweep eps={eps * 255:.2g}/255",
                                       progress)
            out["eps_sweep"][f"{eps:.6g}"] = {str(b): float((adv[:, b] == struth[:, b]).float().mean())
                                              for b in range(L)}
    out["samples"] = {"clean": len(clean_data), "robust": len(rob_data)}
    out["standard_error_robust"] = 0.5 / math.sqrt(max(1, len(rob_data)))  # worst case, binomial
    out["noise_accuracy"] = noise_accuracy(model, rob_data, hier, cfg, device)
    out["checks"] = sanity_checks(out, raw)
    out["seconds"] = time.perf_counter() - t0
    return out


@torch.no_grad()
def noise_accuracy(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device) -> dict:
    """Accuracy per level under uniform random noise of the same ε (a gradient-masking reference)."""
    from .attacks import random_init

    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 99)
    right = []
    for x, y in data.batches(cfg.batch_size, image_size=model.image_size):
        x, y = x.to(device), y.to(device)
        xn = (x + random_init(x, cfg.eps, cfg.norm, g)).clamp(0, 1)
        logits = model(xn, tree=hier.name)
        right.append(torch.stack([z.argmax(1) for z in logits], 1).cpu() == level_labels(hier, y.cpu()))
    r = torch.cat(right).float().mean(0)
    return {str(b): float(r[b]) for b in range(hier.num_levels)}


def sanity_checks(entry: dict, raw_attacked: dict[str, float], noise_sigmas: float = 3.0) -> list[dict]:
    """Checks every robust number must pass (METHOD.md §5); a failed one is reported, not hidden.

    - the accuracy of level-a predictions on level-a-attacked images is not above their clean accuracy
      (beyond binomial noise): the attack works;
    - random noise of the same ε hurts less than PGD at every attacked level (else suspect gradient masking).
    """
    se = entry["standard_error_robust"]
    clean = entry["clean_on_robust_subset"]
    checks = []
    for a, acc in raw_attacked.items():
        checks.append({"check": "attacked <= clean", "level": int(a), "attacked": acc, "clean": clean[a],
                       "passed": acc <= clean[a] + noise_sigmas * se})
        checks.append({"check": "pgd <= random noise", "level": int(a), "pgd": entry["robust"][a][a],
                       "noise": entry["noise_accuracy"][a],
                       "passed": entry["robust"][a][a] <= entry["noise_accuracy"][a] + noise_sigmas * se})
    return checks
