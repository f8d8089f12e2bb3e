"""Attacks: one PGD loop (:mod:`.pgd`), per-sample objectives of logits (:mod:`.objectives`), the
:class:`ThreatModel` that training and evaluation share (:mod:`.threat`), and an AutoAttack adapter
(:mod:`.autoattack`, through the optional package ``pyautoattack``)."""

from .objectives import OBJECTIVES, ce, cw_margin, level_objective, targeted_ce
from .pgd import pgd, pgd_joint, project, random_init
from .threat import ThreatModel, attack_jointly

__all__ = ["pgd", "pgd_joint", "project", "random_init", "ce", "cw_margin", "targeted_ce", "level_objective",
           "OBJECTIVES", "ThreatModel", "attack_jointly"]
