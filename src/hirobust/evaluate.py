"""Clean and attacked accuracy at every level, level-targeted attacks, transfer success rates.

For a classifier and a dataset: clean accuracy at every read level b; for every attack level a, an attack
maximising a level-a objective, read at every level b (robust accuracy [a][b]); the transfer success rate
TSR(a->b) = P[level-b prediction wrong on x + δ_a | level-b prediction right on x]; hierarchical metrics
(mistake severity, consistency, full-path accuracy). Attacked numbers come from a fixed, seeded subset (the
same images for every model) and pass the sanity checks of METHOD.md §5, or the report flags them.

"Robust accuracy" counts an image only if it is classified right both clean and attacked (the clean image
lies in the ε-ball too), so it never exceeds the clean accuracy of the same images.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from . import distributed as dist
from .attacks import level_objective, pgd, random_init
from .data import ZSDataset
from .hierarchy import Hierarchy
from .metrics import hierarchical_metrics

ATTACKS = ("pgd", "cw", "autoattack")


@dataclass
class EvalConfig:
    eps: float = 1 / 255
    steps: int = 20
    alpha: float | None = None  # default eps / 4
    norm: str = "linf"
    attacks: list[str] = field(default_factory=lambda: ["pgd"])  # pgd (CE) | cw (margin) | autoattack; first = main
    attack_levels: list[int] | None = None  # None: every level
    robust_samples: int | None = 1000  # seeded subset for attacks (None: all)
    autoattack_samples: int | None = None  # a smaller seeded subset for AutoAttack (None: robust_samples)
    autoattack_iters: int = 100  # APGD iterations per run (AutoAttack's standard: 100)
    clean_samples: int | None = None  # None: the whole split
    eps_sweep: list[float] = field(default_factory=list)  # extra eps for a leaf-level PGD (the report's sweep)
    sweep_samples: int | None = 500
    check_more_steps: bool = False  # sanity check: leaf PGD with 2x steps must not help the model beyond noise
    batch_size: int = 500
    seed: int = 0
    amp: str = "off"  # off: attacks in float32 (METHOD.md §5) | bf16: autocast (shown equal in the benchmark)

    def __post_init__(self):
        if not self.eps >= 0 or any(not e >= 0 for e in self.eps_sweep):
            raise ValueError(f"eps must be >= 0 (got eps={self.eps}, eps_sweep={self.eps_sweep})")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad or not self.attacks:
            raise ValueError(f"unknown attack {bad[0] if bad else None!r}; use one or more of {ATTACKS}")
        if self.amp not in ("off", "bf16"):
            raise ValueError(f"eval amp must be 'off' or 'bf16', got {self.amp!r}")


def _autocast(cfg: EvalConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")


def level_labels(hier: Hierarchy, y: torch.Tensor) -> torch.Tensor:
    """[N] leaf labels -> [N, levels] node labels."""
    return torch.stack([hier.labels(y, lvl) for lvl in range(hier.num_levels)], 1)


def _preds(logits: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([z.argmax(1) for z in logits], 1).cpu()


@torch.no_grad()
def predict(model, data: ZSDataset, tree: str | None, batch_size: int, device, desc: str = "clean",
            progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions [N, levels], leaf labels [N]) of clean images (sharded over ranks, gathered in order)."""
    data, _ = _shard(data, batch_size)
    preds, labels = [], []
    for x, y in tqdm(data.batches(batch_size, image_size=model.image_size), total=-(-len(data) // batch_size),
                     desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        preds.append(_preds(model(x.to(device), tree=tree)))
        labels.append(y)
    return _gather(_cat(preds, model, tree), device), _gather(torch.cat(labels or [data.labels[:0]]), device)


def _shard(data: ZSDataset, batch_size: int) -> tuple[ZSDataset, int]:
    """This rank's share of ``data`` in whole batches (those one process makes, see ``dist.shard_batches``), and the
    number of batches before it. With the random streams advanced past those batches (``_skip_draws``), every image
    meets the same batch and the same random start for any number of ranks: results do not depend on it."""
    if not dist.active():
        return data, 0
    batches, world = -(-len(data) // batch_size), dist.world()
    if batches < world and dist.is_main():
        warnings.warn(f"evaluation: {len(data)} images make {batches} batch(es) of {batch_size} for {world} ranks, "
                      f"so {world - batches} rank(s) wait; set eval.batch_size={-(-len(data) // world)} or less to "
                      f"give every rank work", stacklevel=3)
    part, first = dist.shard_batches(len(data), batch_size)
    return data.subset(torch.arange(len(data))[part]), first


def _skip_draws(g: torch.Generator, batches: int, shape: tuple, cfg: EvalConfig, device) -> None:
    """Advance ``g`` past the random starts of ``batches`` earlier full batches of ``shape`` (the ranks before this
    one), drawing exactly what ``random_init`` draws for them (a random tensor per batch: cheap next to an attack)."""
    for _ in range(batches):
        random_init(torch.empty(shape, device=device), 1.0, cfg.norm, g)


def _cat(preds: list[torch.Tensor], model, tree: str | None) -> torch.Tensor:
    """Stacked predictions [N, levels]; [0, levels] for a rank without batches."""
    if preds:
        return torch.cat(preds)
    return torch.empty(0, len(model.head(tree).sizes), dtype=torch.long)


def _gather(t: torch.Tensor, device) -> torch.Tensor:
    return dist.gather_cat(t.to(device)).cpu() if dist.active() else t


def attacked_predictions(model, data: ZSDataset, hier: Hierarchy, level: int, eps: float, cfg: EvalConfig, device,
                         desc: str, progress: bool = True, attack: str = "pgd", steps: int | None = None,
                         ) -> torch.Tensor:
    """Predictions [N, levels] on images attacked at ``level`` (the attack maximises that level's objective)."""
    from .attacks.autoattack import autoattack

    preds = []
    data, first = _shard(data, cfg.batch_size)
    g = torch.Generator(device=device)
    g.manual_seed((cfg.seed * 7 + level) * 1009)
    steps = cfg.steps if steps is None else steps
    for i, (x, y) in enumerate(tqdm(data.batches(cfg.batch_size, image_size=model.image_size),
                                    total=-(-len(data) // cfg.batch_size), desc=desc, disable=not progress,
                                    leave=False, dynamic_ncols=True)):
        x, y = x.to(device), y.to(device)
        if i == 0 and attack != "autoattack" and eps > 0:  # pgd draws a random start only when eps > 0
            _skip_draws(g, first, (cfg.batch_size, *x.shape[1:]), cfg, device)
        y_level = hier.labels(y, level)
        with _autocast(cfg, device):
            if attack == "autoattack":
                x_adv = autoattack(lambda z: model(z, tree=hier.name)[level], x, y_level, eps, cfg.norm,
                                   seed=cfg.seed, batch_size=cfg.batch_size, owner=model, n_iter=cfg.autoattack_iters)
            else:
                fn = level_objective(model, level, y_level, "ce" if attack == "pgd" else "cw", tree=hier.name)
                x_adv = pgd(fn, x, eps, steps, cfg.alpha, cfg.norm, random_start=True, generator=g)
            with torch.no_grad():
                preds.append(_preds(model(x_adv, tree=hier.name)))
    return _gather(_cat(preds, model, hier.name), device)


def _robust_and_tsr(right: torch.Tensor, adv_right: torch.Tensor) -> tuple[dict, dict]:
    L = right.shape[1]
    robust = {str(b): float((right[:, b] & adv_right[:, b]).float().mean()) for b in range(L)}
    flipped = right & ~adv_right
    tsr = {str(b): float(flipped[:, b].sum() / right[:, b].sum()) if right[:, b].any() else float("nan")
           for b in range(L)}
    return robust, tsr


def evaluate_model(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device="cpu", progress=True) -> dict:
    """The report entry of one model: clean, robust[a][b], transfer_success[a][b] (of the first attack), the same
    for every attack in ``cfg.attacks``, hierarchical metrics, ε sweep, sample counts and sanity checks."""
    device = torch.device(device)
    model.eval().to(device)
    t0 = time.perf_counter()
    L = hier.num_levels
    clean_data = data.seeded_subset(cfg.clean_samples, cfg.seed)
    pred, y = predict(model, clean_data, hier.name, cfg.batch_size, device, progress=progress)
    truth = level_labels(hier, y)
    out: dict = {"clean": {str(b): float((pred[:, b] == truth[:, b]).float().mean()) for b in range(L)}}
    out["hierarchical"] = {"clean": hierarchical_metrics(pred, truth, hier)}
    rob_data = data.seeded_subset(cfg.robust_samples, cfg.seed)
    rpred, ry = predict(model, rob_data, hier.name, cfg.batch_size, device, progress=False)
    rtruth = level_labels(hier, ry)
    right = rpred == rtruth
    out["clean_on_robust_subset"] = {str(b): float(right[:, b].float().mean()) for b in range(L)}
    levels = cfg.attack_levels if cfg.attack_levels is not None else list(range(L))
    levels = [a for a in levels if hier.num_nodes(a) > 1]  # a level with one node cannot be attacked (PCAM's root)
    out["attacks"] = {}
    raw: dict[str, dict[str, float]] = {}
    for attack in cfg.attacks:
        sub, sub_right, sub_truth = rob_data, right, rtruth
        if attack == "autoattack" and cfg.autoattack_samples is not None:
            sub = data.seeded_subset(min(cfg.autoattack_samples, len(rob_data)), cfg.seed)
            sp, sy = predict(model, sub, hier.name, cfg.batch_size, device, progress=False)
            sub_truth = level_labels(hier, sy)
            sub_right = sp == sub_truth
        entry = {"robust": {}, "transfer_success": {}, "samples": len(sub)}
        raw[attack] = {}
        name = {"pgd": f"PGD-{cfg.steps}", "cw": f"CW-{cfg.steps}", "autoattack": "AutoAttack"}[attack]
        for a in levels:
            adv = attacked_predictions(model, sub, hier, a, cfg.eps, cfg, device, f"{name} level {a}", progress,
                                       attack=attack)
            adv_right = adv == sub_truth
            raw[attack][str(a)] = float(adv_right[:, a].float().mean())
            entry["robust"][str(a)], entry["transfer_success"][str(a)] = _robust_and_tsr(sub_right, adv_right)
            if a == 0 and attack == cfg.attacks[0]:
                out["hierarchical"][f"{attack} at level 0"] = hierarchical_metrics(adv, sub_truth, hier)
        entry["clean_on_subset"] = {str(b): float(sub_right[:, b].float().mean()) for b in range(L)}
        out["attacks"][attack] = entry
    main = out["attacks"][cfg.attacks[0]]
    out["robust"], out["transfer_success"] = main["robust"], main["transfer_success"]
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
    more_steps = None
    if cfg.check_more_steps and 0 in levels:
        adv = attacked_predictions(model, rob_data, hier, 0, cfg.eps, cfg, device, f"PGD-{2 * cfg.steps} level 0",
                                   progress, steps=2 * cfg.steps)
        more_steps = _robust_and_tsr(right, adv == rtruth)[0]["0"]
        out["pgd_more_steps_leaf"] = {"steps": 2 * cfg.steps, "robust": more_steps}
    out["samples"] = {"clean": len(clean_data), "robust": len(rob_data)}
    out["standard_error_robust"] = 0.5 / math.sqrt(max(1, len(rob_data)))  # worst case, binomial
    out["noise_accuracy"] = noise_accuracy(model, rob_data, hier, cfg, device)
    out["checks"] = sanity_checks(out, raw, more_steps)
    out["seconds"] = time.perf_counter() - t0
    return out


@torch.no_grad()
def noise_accuracy(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device) -> dict:
    """Accuracy per level under uniform random noise of the same ε (a gradient-masking reference)."""
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 99)
    data, first = _shard(data, cfg.batch_size)
    right = [torch.zeros(0, hier.num_levels, dtype=torch.bool)]
    for i, (x, y) in enumerate(data.batches(cfg.batch_size, image_size=model.image_size)):
        x, y = x.to(device), y.to(device)
        if i == 0:
            _skip_draws(g, first, (cfg.batch_size, *x.shape[1:]), cfg, device)
        xn = (x + random_init(x, cfg.eps, cfg.norm, g)).clamp(0, 1)
        right.append(_preds(model(xn, tree=hier.name)) == level_labels(hier, y.cpu()))
    r = _gather(torch.cat(right), device).float().mean(0)
    return {str(b): float(r[b]) for b in range(hier.num_levels)}


def sanity_checks(entry: dict, raw: dict[str, dict[str, float]], more_steps: float | None = None,
                  sigmas: float = 3.0) -> list[dict]:
    """The checks of METHOD.md §5 on every robust number; a failed one is reported, never hidden.

    - attacked <= clean: level-a accuracy on level-a-attacked images is not above the same images' clean
      accuracy (beyond ``sigmas`` binomial standard errors): the attack works;
    - pgd <= random noise: uniform noise of the same ε hurts less than PGD (else suspect gradient masking);
    - autoattack <= pgd: the stronger attack finds at least as many errors (beyond noise);
    - more steps: PGD with twice the steps does not leave the model more robust (beyond noise).
    """
    se = entry["standard_error_robust"]
    tol = sigmas * se
    checks = []
    for attack, levels in raw.items():
        clean = entry["attacks"][attack]["clean_on_subset"]
        for a, acc in levels.items():
            checks.append({"check": "attacked <= clean", "attack": attack, "level": int(a), "attacked": acc,
                           "clean": clean[a], "passed": acc <= clean[a] + tol})
    pgd_main = entry["attacks"].get("pgd")
    if pgd_main:
        for a, row in pgd_main["robust"].items():
            checks.append({"check": "pgd <= random noise", "level": int(a), "pgd": row[a],
                           "noise": entry["noise_accuracy"][a], "passed": row[a] <= entry["noise_accuracy"][a] + tol})
    aa = entry["attacks"].get("autoattack")
    if aa and pgd_main:
        for a, row in aa["robust"].items():
            checks.append({"check": "autoattack <= pgd", "level": int(a), "autoattack": row[a],
                           "pgd": pgd_main["robust"][a][a], "passed": row[a] <= pgd_main["robust"][a][a] + tol})
    if more_steps is not None and pgd_main:
        base = pgd_main["robust"]["0"]["0"]
        checks.append({"check": "more steps do not help", "level": 0, "pgd": base, "pgd_2x_steps": more_steps,
                       "passed": more_steps <= base + tol})
    return checks
