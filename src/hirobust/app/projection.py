"""Projections from a bench result: minutes per ImageNet-1k epoch and hours for the paper's evaluation protocol
over the 15 zero-shot datasets, on 1..8 devices (docs/scaling.md)."""

from __future__ import annotations

from .markdown import rate as _r
from .markdown import table_lines

IMAGENET_TRAIN_IMAGES = 1_281_167


def paper_eval_config():
    """The evaluation protocol of the paper configs, read from ``configs/paper/tecoa.yaml`` (PGD-20, CW-20,
    AutoAttack; 1,000 / 500 attacked images per dataset, the 2x-steps check); a test keeps every paper config's
    protocol equal to it."""
    from ..typed import from_dict
    from .config import load_yaml
    from .schema import ReproduceConfig

    return from_dict(ReproduceConfig, load_yaml("paper/tecoa")).evaluate.eval


def eval_passes(dataset: str, cfg) -> tuple[int, int]:
    """(input-gradient passes, forward passes) that ``evaluate_model`` spends on one model and one dataset under
    ``cfg`` (an ``EvalConfig``), on the dataset's default tree (:func:`tree_eval_passes`)."""
    from ..data.registry import EVAL_IMAGES
    from ..hierarchy import load_forest

    return tree_eval_passes(load_forest(dataset)[0], EVAL_IMAGES[dataset], cfg)


def tree_eval_passes(tree, images: int, cfg) -> tuple[int, int]:
    """(input-gradient passes, forward passes), each counted in images, that ``evaluate_model`` spends on ``images``
    images read with hierarchy ``tree`` under ``cfg``: the evaluator's own plan (:func:`hirobust.eval_plan.eval_plan`)
    times each step's passes; a test counts the passes of real ``evaluate_model`` runs and finds the same. AutoAttack
    is counted as an upper bound: every image stays robust through APGD-CE and every APGD-T target (pyautoattack
    drops the images it has already broken)."""
    from ..eval_plan import eval_plan

    nodes = [tree.num_nodes(b) for b in range(tree.num_levels)]
    plan = eval_plan(cfg, nodes, images)
    grad, fwd = 0, plan.clean + 2 * plan.robust  # clean split, clean robust subset, random-noise accuracy
    for run in plan.attacks:
        if run.attack == "autoattack":
            fwd += run.samples if run.subset == "autoattack" else 0  # the clean predictions of its own subset
            for a in run.levels:
                runs = 1 + (min(9, nodes[a] - 1) if nodes[a] >= 4 else 0)  # APGD-CE, then APGD-T per target class
                grad += run.samples * runs * cfg.autoattack_iters
                fwd += 2 * run.samples  # pyautoattack's clean check, then our predictions
        else:  # pgd, cw: one PGD run per level, then the predictions
            grad += len(run.levels) * run.samples * cfg.steps
            fwd += len(run.levels) * run.samples
    if plan.more_steps:
        grad += plan.robust * 2 * cfg.steps
        fwd += plan.robust
    if plan.sweep:  # clean predictions of the sweep subset, then one PGD run per (level, ε)
        runs = len(plan.sweep_levels) * len(cfg.eps_sweep)
        grad += runs * plan.sweep * cfg.steps
        fwd += plan.sweep + runs * plan.sweep
    return grad, fwd


def project(res: dict, devices: list[int], eval_cfg=None) -> dict:
    """Projected times from a bench result: minutes per ImageNet-1k epoch per method, and hours to evaluate one
    model on the 15 datasets under ``eval_cfg`` (default: the paper protocol), for each device count in ``devices``.
    Evaluation time is the passes of :func:`eval_passes` at the bare input-gradient and forward rates, divided by
    the measured evaluation fraction of ceiling. Scaling over devices is taken as linear (an upper bound)."""
    from ..data.registry import ZEROSHOT_DATASETS

    eval_cfg = eval_cfg or paper_eval_config()
    bare = res["evaluation"].get("bare", res["bare"])  # measured in the same rounds as the evaluation fraction
    t_ig, t_f = 1 / bare["input_grad_img_s"], 1 / bare["forward_img_s"]
    frac = res["evaluation"]["fraction_of_ceiling"]
    epoch = {name: IMAGENET_TRAIN_IMAGES / m["train_img_s"] / 60 for name, m in res["methods"].items()}
    per_dataset = {}
    for d in ZEROSHOT_DATASETS:
        grad, fwd = eval_passes(d, eval_cfg)
        per_dataset[d] = {"input_grad_passes": grad, "forward_passes": fwd,
                          "minutes": (grad * t_ig + fwd * t_f) / frac / 60}
    total_h = sum(v["minutes"] for v in per_dataset.values()) / 60
    return {
        "precision": res["amp"],
        "devices": list(devices),
        "imagenet_epoch_minutes": {name: {str(g): m / g for g in devices} for name, m in epoch.items()},
        "eval_15_datasets_hours": {str(g): total_h / g for g in devices},
        "eval_per_dataset": per_dataset,
        "eval_protocol": {"attacks": eval_cfg.attacks, "steps": eval_cfg.steps, "robust_samples":
                          eval_cfg.robust_samples, "autoattack_samples": eval_cfg.autoattack_samples,
                          "autoattack": "upper bound (no image dropped)"},
        "scaling": "linear in devices (an upper bound; DDP's all-reduce and per-rank set-up are not counted)",
    }


def projection_markdown(p: dict) -> list[str]:
    g = p["devices"]
    e = p["eval_protocol"]
    lines = ["", f"Projected from these rates ({p['precision']}; {p['scaling']}):", ""]
    rows = [[f"ImageNet-1k epoch, {name} (min)"] + [_r(row[str(d)]) for d in g]
            for name, row in p["imagenet_epoch_minutes"].items()]
    rows.append([f"evaluation of one model on the 15 datasets (h): {', '.join(e['attacks'])}, "
                 f"{e['robust_samples']} / {e['autoattack_samples']} attacked images, AutoAttack as an upper bound"]
                + [_r(p["eval_15_datasets_hours"][str(d)]) for d in g])
    return lines + table_lines(["projected time"] + [f"{d} device{'s' if d > 1 else ''}" for d in g], rows)
