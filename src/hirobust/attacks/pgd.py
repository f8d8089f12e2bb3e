"""One gradient attack loop for every method and every evaluation (Madry et al. PGD).

The loop knows nothing about models, methods or geometry: it maximises ``loss_fn(x_adv)``, a
per-sample loss, over the ε-ball around ``x`` intersected with the pixel box [0, 1]. Gradients
are taken with respect to the perturbation only (``torch.autograd.grad``), so no parameter ever
receives a ``.grad`` and no weight-gradient work is done. Nothing in the loop synchronises with
the host.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NORMS = ("linf", "l2")


def _check(x: torch.Tensor, eps: float, steps: int, norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; use one of {NORMS}")
    if not eps >= 0:  # also catches NaN
        raise ValueError(f"eps must be >= 0, got {eps}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if x.dim() < 2:
        raise ValueError(f"x must be batched [B, ...], got shape {tuple(x.shape)}")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def _l2(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12)


def project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Nearest point of the ε-ball (then the pixel box [0, 1] around ``x``) to ``delta``."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * _bcast((eps / _l2(delta)).clamp(max=1.0), delta)
    return (x + delta).clamp(0.0, 1.0) - x


def random_init(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform in the L∞ ball, or uniform in the L2 ball (direction Gaussian, radius eps·U^(1/d))."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = x[0].numel()
    r = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d) * eps
    return g / _bcast(_l2(g), g) * _bcast(r, g)


def pgd(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: float,
    steps: int,
    alpha: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    momentum: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn``; returns ``x_adv`` (detached).

    Args:
        loss_fn: ``x_adv [B, ...] -> [B]`` per-sample loss to maximise (summed for the gradient, so samples are
            attacked independently).
        x: clean inputs in [0, 1].
        eps: radius of the threat model (pixel units).
        steps: number of gradient steps (0 returns the random start, or ``x``).
        alpha: step size; default ``eps / 4``.
        norm: ``"linf"`` (sign steps) or ``"l2"`` (normalised-gradient steps).
        random_start: start uniformly inside the ball.
        momentum: if > 0, steps follow ``m <- momentum·m + g/‖g‖₁`` (MI-FGSM style, as FARE's attack).
        generator: the random start's generator (for reproducible attacks).

    Guarantees: ``‖x_adv - x‖ ≤ eps`` in the chosen norm, ``0 ≤ x_adv ≤ 1``, and no ``.grad`` is written to
    any tensor other than the internal perturbation.
    """
    _check(x, eps, steps, norm)
    x = x.detach()
    alpha = eps / 4 if alpha is None else alpha
    if random_start and eps > 0:
        delta = project(random_init(x, eps, norm, generator), x, eps, norm)
    else:
        delta = torch.zeros_like(x)
    if eps == 0:
        return x.clone()
    buf = torch.zeros_like(x) if momentum > 0 else None
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = loss_fn(x + delta)
            if loss.dim() != 1 or loss.shape[0] != x.shape[0]:
                raise ValueError(
                    f"loss_fn must return a per-sample loss of shape [{x.shape[0]}], got {tuple(loss.shape)}"
                )
            (grad,) = torch.autograd.grad(loss.sum(), delta)
            delta = delta.detach()
            if buf is not None:
                buf = momentum * buf + grad / _bcast(grad.abs().flatten(1).mean(1).clamp_min(1e-12), grad)
                grad = buf
            if norm == "linf":
                delta = delta + alpha * grad.sign()
            else:
                delta = delta + alpha * grad / _bcast(_l2(grad), grad)
            delta = project(delta, x, eps, norm)
    return (x + delta).detach()
