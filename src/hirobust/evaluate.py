"""Clean and attacked accuracy at every level, level-targeted attacks, transfer success rates.

For a classifier and a dataset: clean accuracy at every read level b; for every attack level a, an attack
maximising a level-a objective, read at every level b (robust accuracy [a][b]); the transfer success rate
TSR(a->b) = P[level-b prediction wrong on x + δ_a | level-b prediction right on x]; hierarchical metrics
(mistake severity, consistency, full-path accuracy). Attacked numbers come from a fixed, seeded subset (the
same images for every model) and pass the sanity checks of docs/method.md §5, or the report flags them.

One definition of robust accuracy everywhere (``ROBUST_DEFINITION``). Every accuracy carries its n and a 95%
Wilson interval (``*_ci95``); the per-image results (``per_image``, packed bits) let two models evaluated on the
same images be compared pairwise (:mod:`hirobust.stats`).
"""

from __future__ import annotations

import math
import time
import warnings

import torch
from tqdm.auto import tqdm

from . import distributed as dist
from .attacks import ThreatModel, level_objective
from .data import ZSDataset
from .errors import ConfigError
from .eval_plan import eval_plan
from .hierarchy import Hierarchy
from .metrics import chance_flags, chance_rates, hierarchical_metrics  # noqa: F401 (re-exported)
from .progress import label
from .records import correct, level_bits, subset_of, subset_record
from .settings import EvalConfig
from .stats import accuracy

AUTOATTACK_NAMES = {"reduced": "AutoAttack, reduced (APGD-CE + APGD-T, pyautoattack)",
                    "standard": "AutoAttack, standard (APGD-CE, APGD-T, FAB-T, Square; pyautoattack)"}
ROBUST_DEFINITION = (
    "robust accuracy at read level b under a level-a attack = the fraction of the attacked images whose level-b "
    "prediction is right both on the clean image and on the attacked one (the clean image lies in the ε-ball too, "
    "as in RobustBench), so it never exceeds the clean accuracy of the same images; the same definition holds for "
    "every attack, level and ε of a report")


def threat_model(cfg: EvalConfig, eps: float | None = None, steps: int | None = None) -> ThreatModel:
    """The evaluation's threat model: ``cfg``'s ε (or ``eps``, e.g. a sweep's), norm, steps (or ``steps``) and step
    size, from a random start (the PGD attacks of every report)."""
    return ThreatModel(cfg.eps if eps is None else eps, cfg.steps if steps is None else steps, cfg.alpha, cfg.norm,
                       random_start=True)


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
                     desc=label(desc), disable=not progress, leave=False, dynamic_ncols=True):
        logits = model(x.to(device), tree=tree)
        if not all(bool(torch.isfinite(z).all()) for z in logits):  # a NaN model must not look "robust"
            raise ConfigError("the model gives non-finite logits on clean images (NaN or inf weights, or a broken "
                             "head): its accuracies would be meaningless; check or retrain the checkpoint")
        preds.append(_preds(logits))
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


def _skip_draws(g: torch.Generator, batches: int, shape: tuple, threat: ThreatModel, device) -> None:
    """Advance ``g`` past the random starts of ``batches`` earlier full batches of ``shape`` (the ranks before this
    one), drawing exactly what the threat's random start draws for them (cheap next to an attack)."""
    for _ in range(batches):
        threat.noise(torch.empty(shape, device=device), g)


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
    threat = threat_model(cfg, eps, steps)
    for i, (x, y) in enumerate(tqdm(data.batches(cfg.batch_size, image_size=model.image_size),
                                    total=-(-len(data) // cfg.batch_size), desc=label(desc), disable=not progress,
                                    leave=False, dynamic_ncols=True)):
        x, y = x.to(device), y.to(device)
        if i == 0 and attack != "autoattack" and threat.eps > 0:  # pgd draws a random start only when eps > 0
            _skip_draws(g, first, (cfg.batch_size, *x.shape[1:]), threat, device)
        y_level = hier.labels(y, level)
        with _autocast(cfg, device):
            if attack == "autoattack":
                x_adv = autoattack(lambda z: model(z, tree=hier.name)[level], x, y_level, threat.eps, threat.norm,
                                   seed=cfg.seed, batch_size=cfg.batch_size, owner=model, n_iter=cfg.autoattack_iters,
                                   version=cfg.autoattack_version)
            else:
                fn = level_objective(model, level, y_level, "ce" if attack == "pgd" else "cw", tree=hier.name)
                x_adv = threat.attack(fn, x, generator=g)
            with torch.no_grad():
                preds.append(_preds(model(x_adv, tree=hier.name)))
    return _gather(_cat(preds, model, hier.name), device)


def _robust_and_tsr(right: torch.Tensor, adv_right: torch.Tensor) -> tuple[dict, dict, dict, dict, dict]:
    """(robust[b], robust_ci95[b], tsr[b], tsr_ci95[b], tsr_n[b]) from clean/attacked correctness [N, L]."""
    L = right.shape[1]
    rob = [accuracy(right[:, b] & adv_right[:, b]) for b in range(L)]
    flipped = right & ~adv_right
    tsr = [accuracy(flipped[right[:, b], b]) for b in range(L)]  # among the images right at b when clean
    return ({str(b): r["value"] for b, r in enumerate(rob)}, {str(b): r["ci95"] for b, r in enumerate(rob)},
            {str(b): t["value"] for b, t in enumerate(tsr)}, {str(b): t["ci95"] for b, t in enumerate(tsr)},
            {str(b): t["n"] for b, t in enumerate(tsr)})


def _acc_dict(mat: torch.Tensor) -> tuple[dict, dict]:
    """({level: accuracy}, {level: 95% Wilson interval}) of correctness [N, L]."""
    accs = [accuracy(mat[:, b]) for b in range(mat.shape[1])]
    return {str(b): r["value"] for b, r in enumerate(accs)}, {str(b): r["ci95"] for b, r in enumerate(accs)}


def _kept(cells, key: str, compute) -> torch.Tensor:
    """``compute()`` (attacked predictions [N, levels]), or the result kept in ``cells`` under ``key``; a new
    result is kept at once, so a killed evaluation resumes after its last finished (attack, level) cell."""
    if cells is None:
        return compute()
    got = cells.get(key)
    if got is None:
        got = compute()
        cells.put(key, got)
    return got


def _attack_entry(model, sub, sub_right, sub_truth, hier, levels, attack, cfg, device, progress,
                  cells=None) -> tuple[dict, dict]:
    """(report entry of one attack at every level, {level: raw attacked accuracy at that level})."""
    name = {"pgd": f"PGD-{cfg.steps}", "cw": f"CW-{cfg.steps}", "autoattack": "AutoAttack"}[attack]
    entry = {"robust": {}, "robust_ci95": {}, "transfer_success": {}, "transfer_success_ci95": {},
             "transfer_success_n": {}, "samples": len(sub), "levels_bits": {}, "ok": {}}
    raw = {}
    for a in levels:
        adv = _kept(cells, f"{attack}-L{a}", lambda a=a: attacked_predictions(
            model, sub, hier, a, cfg.eps, cfg, device, f"{name} level {a}", progress, attack=attack))
        adv_right = adv == sub_truth
        raw[str(a)] = float(adv_right[:, a].float().mean())
        k = str(a)
        (entry["robust"][k], entry["robust_ci95"][k], entry["transfer_success"][k], entry["transfer_success_ci95"][k],
         entry["transfer_success_n"][k]) = _robust_and_tsr(sub_right, adv_right)
        entry["levels_bits"][k] = level_bits(sub_right & adv_right)
        entry["ok"][k] = sub_right & adv_right  # [N, L]: right clean and under this attack (for the worst case)
        if a == 0:
            entry["hierarchical_leaf"] = hierarchical_metrics(adv, sub_truth, hier)
    entry["clean_on_subset"], entry["clean_on_subset_ci95"] = _acc_dict(sub_right)
    return entry, raw


def worst_case(oks: dict[str, dict[str, torch.Tensor]]) -> tuple[dict, dict] | None:
    """The per-image worst case over an ensemble of attacks on the same images (RobustBench's and AutoAttack's rule
    for an ensemble): an image counts as robust at read level b under a level-a attack only if it is right clean and
    under *every* attack of the ensemble at level a. ``oks[attack][a]``: bool [N, L]. Returns (the report entry:
    robust[a][b] with Wilson intervals, the attacks and levels it covers; the per-image bits), or None for fewer
    than two attacks."""
    if len(oks) < 2:
        return None
    levels = sorted(set.intersection(*(set(m) for m in oks.values())), key=int)
    entry = {"attacks": sorted(oks), "robust": {}, "robust_ci95": {}, "samples": None}
    bits = {}
    for a in levels:
        ok = torch.stack([oks[atk][a] for atk in oks]).all(0)  # [N, L]
        entry["robust"][a], entry["robust_ci95"][a] = _acc_dict(ok)
        entry["samples"] = int(ok.shape[0])
        bits[a] = level_bits(ok)
    return entry, bits


def evaluate_model(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device="cpu", progress=True,
                   cells=None) -> dict:
    """The report entry of one model: clean, robust[a][b], transfer_success[a][b] (of the first attack), the same
    for every attack in ``cfg.attacks``, hierarchical metrics, ε sweep, sample counts and sanity checks. Every
    accuracy has a 95% Wilson interval beside it (``<key>_ci95``) and its n (``n``); ``per_image`` holds the
    per-image correctness behind every number (``correct``). Robust accuracy: ``ROBUST_DEFINITION``. ``cells``
    (``get(key)`` / ``put(key, predictions)``) keeps every finished (attack, level) result as it is done."""
    device = torch.device(device)
    model.eval().to(device)
    t0 = time.perf_counter()
    L = hier.num_levels
    plan = eval_plan(cfg, [hier.num_nodes(b) for b in range(L)], len(data))
    clean_data = data.seeded_subset(cfg.clean_samples, cfg.seed)
    pred, y = predict(model, clean_data, hier.name, cfg.batch_size, device, progress=progress)
    truth = level_labels(hier, y)
    out: dict = {}
    out["clean"], out["clean_ci95"] = _acc_dict(pred == truth)
    out["hierarchical"] = {"clean": hierarchical_metrics(pred, truth, hier)}
    per = {"clean": subset_record(len(clean_data), y, pred == truth), "attacks": {}}
    rob_data = data.seeded_subset(cfg.robust_samples, cfg.seed)
    rpred, ry = predict(model, rob_data, hier.name, cfg.batch_size, device, progress=False)
    rtruth = level_labels(hier, ry)
    right = rpred == rtruth
    per["robust"] = subset_record(len(rob_data), ry, right)
    out["clean_on_robust_subset"], out["clean_on_robust_subset_ci95"] = _acc_dict(right)
    out["attacks"] = {}
    raw: dict[str, dict[str, float]] = {}
    oks: dict[str, tuple[str, dict]] = {}
    for run in plan.attacks:  # a level with one node is never attacked (PCAM's root): the plan leaves it out
        attack, sub, sub_right, sub_truth = run.attack, rob_data, right, rtruth
        if run.subset == "autoattack":
            sub = data.seeded_subset(run.samples, cfg.seed)
            sp, sy = predict(model, sub, hier.name, cfg.batch_size, device, progress=False)
            sub_truth = level_labels(hier, sy)
            sub_right = sp == sub_truth
            per["autoattack"] = subset_record(len(sub), sy, sub_right)
        entry, raw[attack] = _attack_entry(model, sub, sub_right, sub_truth, hier, list(run.levels), attack, cfg,
                                           device, progress, cells)
        per["attacks"][attack] = {"subset": run.subset, "levels": entry.pop("levels_bits")}
        oks[attack] = (run.subset, entry.pop("ok"))
        leaf_metrics = entry.pop("hierarchical_leaf", None)
        if leaf_metrics is not None and attack == cfg.attacks[0]:
            out["hierarchical"][f"{attack} at level 0"] = leaf_metrics
        out["attacks"][attack] = entry
    main = out["attacks"][cfg.attacks[0]]
    for k in ("robust", "robust_ci95", "transfer_success", "transfer_success_ci95", "transfer_success_n"):
        out[k] = main[k]
    worst = worst_case({a: m for a, (subset, m) in oks.items() if subset == "robust"})
    if worst is not None:  # several attacks on the same images: per image, the worst of them (RobustBench's rule)
        out["worst_case"], bits = worst
        per["attacks"]["worst"] = {"subset": "robust", "levels": bits}
    if plan.sweep_levels:
        sweep_data = data.seeded_subset(cfg.sweep_samples, cfg.seed)
        sp, sy = predict(model, sweep_data, hier.name, cfg.batch_size, device, progress=False)
        struth = level_labels(hier, sy)
        sright = sp == struth
        per["sweep"] = {**subset_record(len(sweep_data), sy, sright), "levels": {}}
        out["eps_sweep_by_level"] = {}
        for a in plan.sweep_levels:
            rows, bits = {}, {}
            for eps in cfg.eps_sweep:
                adv = _kept(cells, f"sweep-L{a}-{eps:.6g}", lambda a=a, eps=eps: attacked_predictions(
                    model, sweep_data, hier, a, eps, cfg, device, f"sweep L{a} eps={eps * 255:.2g}/255", progress))
                ok = sright & (adv == struth)
                acc, ci = _acc_dict(ok)
                rows[f"{eps:.6g}"] = {"acc": acc, "ci95": ci}
                bits[f"{eps:.6g}"] = level_bits(ok)
            out["eps_sweep_by_level"][str(a)] = rows
            per["sweep"]["levels"][str(a)] = bits
    more_steps = None
    if plan.more_steps:
        adv = _kept(cells, "pgd2x-L0", lambda: attacked_predictions(
            model, rob_data, hier, 0, cfg.eps, cfg, device, f"PGD-{2 * cfg.steps} level 0", progress,
            steps=2 * cfg.steps))
        rob, ci = _robust_and_tsr(right, adv == rtruth)[:2]
        more_steps = rob["0"]
        out["pgd_more_steps_leaf"] = {"steps": 2 * cfg.steps, "robust": more_steps, "robust_ci95": ci["0"],
                                      "n": len(rob_data)}
    out["samples"] = {"clean": len(clean_data), "robust": len(rob_data)}
    out["n"] = {"clean": len(clean_data), "robust": len(rob_data),
                **{a: e["samples"] for a, e in out["attacks"].items()},
                **({"sweep": per["sweep"]["n"]} if "sweep" in per else {})}
    out["standard_error_robust"] = 0.5 / math.sqrt(max(1, len(rob_data)))  # worst case, binomial
    out["noise_accuracy"], out["noise_accuracy_ci95"] = noise_accuracy(model, rob_data, hier, cfg, device)
    out["checks"] = sanity_checks(out, raw, more_steps)
    out["per_image"] = per
    out["seconds"] = time.perf_counter() - t0
    return out


@torch.no_grad()
def noise_accuracy(model, data: ZSDataset, hier: Hierarchy, cfg: EvalConfig, device) -> dict:
    """Accuracy per level under uniform random noise of the same ε (a gradient-masking reference)."""
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 99)
    threat = threat_model(cfg)
    data, first = _shard(data, cfg.batch_size)
    right = [torch.zeros(0, hier.num_levels, dtype=torch.bool)]
    for i, (x, y) in enumerate(data.batches(cfg.batch_size, image_size=model.image_size)):
        x, y = x.to(device), y.to(device)
        if i == 0:
            _skip_draws(g, first, (cfg.batch_size, *x.shape[1:]), threat, device)
        xn = (x + threat.noise(x, g)).clamp(0, 1)
        right.append(_preds(model(xn, tree=hier.name)) == level_labels(hier, y.cpu()))
    return _acc_dict(_gather(torch.cat(right).to(torch.uint8), device).bool())


def sanity_checks(entry: dict, raw: dict[str, dict[str, float]], more_steps: float | None = None,
                  sigmas: float = 3.0) -> list[dict]:
    """The checks of docs/method.md §5 on every robust number; a failed one is reported, never hidden.

    - attacked <= clean: level-a accuracy on level-a-attacked images is not above the same images' clean
      accuracy (beyond ``sigmas`` binomial standard errors): the attack works;
    - pgd <= random noise: uniform noise of the same ε hurts less than PGD (else suspect gradient masking);
    - autoattack <= pgd: the stronger attack finds at least as many errors (beyond noise);
    - more steps: PGD with twice the steps does not leave the model more robust (beyond noise);
    - the attack changes some prediction: robust equal to clean at every attacked level means no gradient reached
      the image (a saturated softmax, a masked gradient), not robustness.
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
    for attack, levels in raw.items():  # robust = clean at every level: no gradient reached the image (masking?)
        clean = entry["attacks"][attack]["clean_on_subset"]
        if levels and any(clean[a] > 0 for a in levels):
            checks.append({"check": "the attack changes some prediction", "attack": attack,
                           "passed": any(acc < clean[a] for a, acc in levels.items())})
    return checks


def class_group_breakdown(entry: dict, hier: Hierarchy, seen: list[str]) -> dict:
    """Seen vs unseen leaves (fine-tuned on / held out of fine-tuning), apart: clean and robust accuracy per
    level with intervals, from the entry's per-image results; and per level the nodes whose leaves are all
    unseen (a superclass never seen in fine-tuning)."""
    unknown = [c for c in seen if c not in hier.leaves]
    if unknown:
        raise ConfigError(f"train_classes names {unknown[0]!r}, not a class of tree {hier.name!r}")
    seen_mask = torch.tensor([c in seen for c in hier.leaves])
    out: dict = {"seen_classes": [c for c in hier.leaves if c in seen],
                 "unseen_classes": [c for c in hier.leaves if c not in seen], "unseen_only_nodes": {}}
    for b in range(1, hier.num_levels):
        anc = hier.ancestor_index(b)
        out["unseen_only_nodes"][str(b)] = [n for j, n in enumerate(hier.nodes(b)) if not seen_mask[anc == j].any()]
    for group, want in (("seen", True), ("unseen", False)):
        g: dict = {}
        y, right = subset_of(entry, "clean")
        m = seen_mask[y] == want
        g["clean"], g["clean_ci95"] = _acc_dict(torch.stack([right[str(b)][m] for b in range(len(right))], 1))
        y, _ = subset_of(entry, "robust")
        m = seen_mask[y] == want
        g["n"] = {"clean": int((seen_mask[subset_of(entry, "clean")[0]] == want).sum()), "robust": int(m.sum())}
        g["attacks"] = {}
        for attack, at in entry["per_image"]["attacks"].items():
            ya, _ = subset_of(entry, at["subset"])
            ma = seen_mask[ya] == want
            rob, ci = {}, {}
            for a in at["levels"]:
                mat = torch.stack([correct(entry, attack, a, b)[ma] for b in range(hier.num_levels)], 1)
                rob[a], ci[a] = _acc_dict(mat)
            g["attacks"][attack] = {"robust": rob, "robust_ci95": ci, "n": int(ma.sum())}
        out[group] = g
    return out
