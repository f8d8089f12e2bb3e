"""Attacks: one PGD loop with pluggable objectives (and, later, AutoAttack and transfer)."""

from .objectives import OBJECTIVES, ce, cw_margin, level_objective, targeted_ce
from .pgd import pgd, pgd_joint, project, random_init

__all__ = ["pgd", "pgd_joint", "project", "random_init", "ce", "cw_margin", "targeted_ce", "level_objective",
           "OBJECTIVES"]
