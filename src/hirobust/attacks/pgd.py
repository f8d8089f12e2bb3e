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

from ..errors import ConfigError

NORMS = ("linf", "l2")


def _check(x: torch.Tensor, eps: float, steps: int, norm: str, alpha: float | None = None,
           strict: bool = False) -> None:
    """The arguments of :func:`pgd` (``strict``: types, the step size and the pixel range too), each named when
    wrong (a library user's call, not a config)."""
    if not strict:
        if norm not in NORMS:
            raise ConfigError(f"unknown norm {norm!r}; use one of {NORMS}")
        if not eps >= 0:  # also catches NaN
            raise ConfigError(f"eps must be >= 0, got {eps}")
        if steps < 0:
            raise ConfigError(f"steps must be >= 0, got {steps}")
        if x.dim() < 2:
            raise ConfigError(f"x must be batched [B, ...], got shape {tuple(x.shape)}")
        return
    if norm not in NORMS:
        raise ConfigError(f"pgd: unknown norm {norm!r}; use one of {NORMS}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:  # also catches NaN
        raise ConfigError(f"pgd: eps must be a number >= 0, got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"pgd: steps must be an integer >= 0, got {steps!r}")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0):
        raise ConfigError(f"pgd: alpha (the step size) must be > 0, got {alpha!r}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ConfigError(f"pgd: x must be a float tensor in [0, 1], got {getattr(x, 'dtype', type(x).__name__)}; "
                         f"convert uint8 images with x.float() / 255")
    if x.dim() < 2:
        raise ConfigError(f"pgd: x must be batched [B, ...], got shape {tuple(x.shape)}; add a batch dimension "
                         f"with x[None]")
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise ConfigError(f"pgd: x must hold finite pixels in [0, 1], got [{float(x.min()):g}, {float(x.max()):g}]"
                         f"{' with NaN or inf' if not torch.isfinite(x).all() else ''}; normalisation belongs inside "
                         f"the model")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def _l2(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12)


def project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Nearest point of the ε-ball (then the pixel box [0, 1] around ``x``) to ``delta``."""
    return _project(delta, x, eps, norm, (0.0, 1.0))


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
    momentum_mode: str = "l1",
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
        momentum: if > 0, steps follow ``m <- momentum·m + g/‖g‖₁`` (MI-FGSM, ``momentum_mode="l1"``) or, with
            ``momentum_mode="sign"``, ``m <- sign(momentum·m + sign(g))`` (FARE's reference code; for L∞ and
            momentum < 1 this equals plain sign steps).
        generator: the random start's generator (for reproducible attacks).

    Guarantees: ``‖x_adv - x‖ ≤ eps`` in the chosen norm, ``0 ≤ x_adv ≤ 1``, and no ``.grad`` is written to
    any tensor other than the internal perturbation.
    """
    _check(x, eps, steps, norm, alpha, strict=True)

    def per_sample(z: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(z)
        if loss.dim() != 1 or loss.shape[0] != x.shape[0]:
            raise ConfigError(
                f"loss_fn must return a per-sample loss of shape [{x.shape[0]}], got {tuple(loss.shape)}"
            )
        return loss

    (x_adv,) = pgd_joint(per_sample, [x], [eps], steps, [alpha], norm, random_start, momentum, generator,
                         boxes=[(0.0, 1.0)], momentum_mode=momentum_mode)
    return x_adv


def pgd_joint(
    loss_fn: Callable[..., torch.Tensor],
    xs: list[torch.Tensor],
    eps: list[float],
    steps: int,
    alpha: list[float | None] | None = None,
    norm: str = "linf",
    random_start: bool = True,
    momentum: float = 0.0,
    generator: torch.Generator | None = None,
    boxes: list[tuple[float, float] | None] | None = None,
    momentum_mode: str = "l1",
) -> list[torch.Tensor]:
    """The PGD loop over several tensors perturbed jointly (e.g. HiRo's image and text perturbations).

    ``loss_fn(*xs_adv)`` returns a loss to maximise, per sample or a batch scalar (a batch objective such as
    HiRo's, whose parent embeddings couple samples); the gradient of its sum drives every tensor. Tensor ``i``
    stays within ``eps[i]`` of ``xs[i]`` and inside ``boxes[i]`` (None: unbounded). Returns detached tensors.
    """
    n = len(xs)
    if momentum_mode not in ("l1", "sign"):
        raise ConfigError(f"unknown momentum_mode {momentum_mode!r}; use 'l1' or 'sign'")
    alpha = alpha or [None] * n
    boxes = boxes or [None] * n
    for x, e in zip(xs, eps):
        _check(x, e, steps, norm)
    base = [x.detach() for x in xs]
    alphas = [e / 4 if a is None else a for e, a in zip(eps, alpha)]
    deltas = []
    for x, e, box in zip(base, eps, boxes):
        d = random_init(x, e, norm, generator) if random_start and e > 0 else torch.zeros_like(x)
        deltas.append(_project(d, x, e, norm, box))
    active = [e > 0 for e in eps]
    bufs = [torch.zeros_like(x) if momentum > 0 else None for x in base]
    # L∞ with a box: the ε-ball ∩ box is one interval per pixel, [lo, hi], computed once (one clamp per step)
    bounds = [(torch.clamp(lo - x, min=-e), torch.clamp(hi - x, max=e)) if norm == "linf" and box is not None
              else None for x, e, (lo, hi) in zip(base, eps, [b or (0.0, 0.0) for b in boxes])]
    with torch.enable_grad():
        for _ in range(steps if any(active) else 0):
            live = [d.requires_grad_(True) if a else d for d, a in zip(deltas, active)]
            loss = loss_fn(*[x + d for x, d in zip(base, live)])
            grads = torch.autograd.grad(loss.sum(), [d for d, a in zip(live, active) if a])
            it = iter(grads)
            new = []
            for i, (x, d) in enumerate(zip(base, live)):
                d = d.detach()
                if active[i]:
                    g = next(it)
                    if bufs[i] is not None and momentum_mode == "sign":
                        bufs[i] = (momentum * bufs[i] + g.sign()).sign()
                        g = bufs[i]
                    elif bufs[i] is not None:
                        bufs[i] = momentum * bufs[i] + g / _bcast(g.abs().flatten(1).mean(1).clamp_min(1e-12), g)
                        g = bufs[i]
                    if bounds[i] is not None:
                        d = torch.clamp(d.add_(g.sign(), alpha=alphas[i]), *bounds[i])
                    else:
                        step = g.sign() if norm == "linf" else g / _bcast(_l2(g), g)
                        d = _project(d + alphas[i] * step, x, eps[i], norm, boxes[i])
                new.append(d)
            deltas = new
    return [(x + d).detach() for x, d in zip(base, deltas)]


def _project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str, box) -> torch.Tensor:
    if box is None:
        if norm == "linf":
            return delta.clamp(-eps, eps)
        return delta * _bcast((eps / _l2(delta)).clamp(max=1.0), delta)
    lo, hi = box
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * _bcast((eps / _l2(delta)).clamp(max=1.0), delta)
    return (x + delta).clamp(lo, hi) - x
