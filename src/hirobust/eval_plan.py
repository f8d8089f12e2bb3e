"""What one evaluation does, decided from its config and the tree alone: which subsets it reads, which levels each
attack attacks, and the ε sweep. :func:`hirobust.evaluate.evaluate_model` follows this plan, and the bench's
projection counts its passes from the same plan, so the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import EvalConfig


@dataclass(frozen=True)
class AttackRun:
    """One attack of ``cfg.attacks``: it attacks each of ``levels`` on ``samples`` images of subset ``subset``
    (``robust``, or ``autoattack`` for AutoAttack's own smaller subset)."""

    attack: str
    subset: str
    samples: int
    levels: tuple[int, ...]


@dataclass(frozen=True)
class EvalPlan:
    clean: int  # images of the clean evaluation
    robust: int  # images of the attacked subset
    levels: tuple[int, ...]  # the attackable levels asked for (a level with one node cannot be attacked)
    attacks: tuple[AttackRun, ...]
    sweep: int  # images of the ε sweep (0: no sweep)
    sweep_levels: tuple[int, ...]
    more_steps: bool  # the leaf check with twice the steps


def subset_size(n: int | None, total: int) -> int:
    """How many samples ``seeded_subset(n)`` of ``total`` holds."""
    return total if n is None else min(n, total)


def pick_levels(wanted: list[int], num_levels: int, allowed: tuple[int, ...]) -> tuple[int, ...]:
    """``wanted`` levels (-1: the top) in order, without repeats, kept where ``allowed``."""
    out: list[int] = []
    for a in wanted:
        a = num_levels - 1 if a == -1 else a
        if a not in out and a in allowed:
            out.append(a)
    return tuple(out)


def check_levels(cfg: EvalConfig, num_levels: int) -> None:
    """Every level the config names exists in a tree of ``num_levels`` levels (refused, never dropped)."""
    from .errors import ConfigError

    if cfg.attack_levels is not None and not cfg.attack_levels:
        raise ConfigError("eval.attack_levels=[] attacks nothing; leave it out (every level) or name levels")
    for key in ("attack_levels", "autoattack_levels", "eps_sweep_levels"):
        bad = [a for a in getattr(cfg, key) or [] if a >= num_levels]
        if bad:
            raise ConfigError(f"eval.{key}: level {bad[0]} does not exist; the tree has levels 0-{num_levels - 1} "
                             f"(-1: the top)")


def eval_plan(cfg: EvalConfig, nodes_per_level: list[int], images: int) -> EvalPlan:
    """The plan of evaluating ``images`` images over a tree with ``nodes_per_level[b]`` nodes at level ``b``."""
    num_levels = len(nodes_per_level)
    check_levels(cfg, num_levels)
    asked = cfg.attack_levels if cfg.attack_levels is not None else range(num_levels)
    levels = tuple(a for a in asked if nodes_per_level[a] > 1)
    robust = subset_size(cfg.robust_samples, images)
    runs = []
    for attack in cfg.attacks:
        subset, samples, attacked = "robust", robust, levels
        if attack == "autoattack":
            if cfg.autoattack_samples is not None:
                subset, samples = "autoattack", subset_size(min(cfg.autoattack_samples, robust), images)
            if cfg.autoattack_levels is not None:
                attacked = pick_levels(cfg.autoattack_levels, num_levels, levels)
        runs.append(AttackRun(attack, subset, samples, attacked))
    sweep_levels = pick_levels(cfg.eps_sweep_levels, num_levels, levels) if cfg.eps_sweep else ()
    return EvalPlan(clean=subset_size(cfg.clean_samples, images), robust=robust, levels=levels, attacks=tuple(runs),
                    sweep=subset_size(cfg.sweep_samples, images) if sweep_levels else 0, sweep_levels=sweep_levels,
                    more_steps=cfg.check_more_steps and 0 in levels)
