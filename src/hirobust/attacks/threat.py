"""The threat model: what an attacker may do (radius, norm) and how the PGD loop searches it (steps, step size,
random start). One object for the methods' training attacks and for the evaluator; it runs the one loop of
:mod:`.pgd` and nothing else."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .pgd import NORMS, pgd, pgd_joint, random_init


@dataclass(frozen=True)
class ThreatModel:
    """An ε-ball in ``norm`` searched by ``steps`` steps of size ``alpha`` (None: ``eps / 4``, as :func:`pgd`),
    from a uniform random start or not; ``momentum`` / ``momentum_mode`` as :func:`pgd` (FARE's attack)."""

    eps: float
    steps: int
    alpha: float | None = None
    norm: str = "linf"
    random_start: bool = True
    momentum: float = 0.0
    momentum_mode: str = "l1"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; use one of {NORMS}")

    def replace(self, **changes) -> ThreatModel:
        """A copy with ``changes`` (e.g. another ``eps`` for a sweep, twice the ``steps``)."""
        return dataclasses.replace(self, **changes)

    def attack(self, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """x_adv [B, ...] maximising the per-sample ``loss_fn`` inside this threat model around ``x`` (in [0, 1])."""
        return pgd(loss_fn, x, self.eps, self.steps, self.alpha, self.norm, random_start=self.random_start,
                   momentum=self.momentum, generator=generator, momentum_mode=self.momentum_mode)

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniform random perturbation of this radius and norm, [B, ...] (the random start; no box)."""
        return random_init(x, self.eps, self.norm, generator)


def attack_jointly(loss_fn: Callable[..., torch.Tensor], xs: Sequence[torch.Tensor], threats: Sequence[ThreatModel],
                   boxes: Sequence[tuple[float, float] | None] | None = None,
                   generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Several tensors perturbed jointly by the one PGD loop (HiRo's image and text perturbations): tensor ``i``
    within ``threats[i]``'s radius (and ``boxes[i]``), with its step size. The threats must agree on the steps,
    norm, random start and momentum (one loop runs them); ``loss_fn(*xs_adv)`` is maximised."""
    first = threats[0]
    shared = ("steps", "norm", "random_start", "momentum", "momentum_mode")
    for t in threats[1:]:
        if any(getattr(t, k) != getattr(first, k) for k in shared):
            raise ConfigError(f"jointly attacked tensors need the same {', '.join(shared)}; got {first} and {t}")
    return pgd_joint(loss_fn, list(xs), [t.eps for t in threats], first.steps, [t.alpha for t in threats],
                     first.norm, first.random_start, first.momentum, generator,
                     boxes=list(boxes) if boxes is not None else None, momentum_mode=first.momentum_mode)
