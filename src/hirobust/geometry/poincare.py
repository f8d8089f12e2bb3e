"""The Poincaré ball of curvature −c (c > 0, radius 1/√c): pure functions, broadcasting over leading dims.

Convention: ``c`` is the positive number such that the curvature is −c (geoopt's ``PoincareBall(c)``).
All arithmetic runs in float32 (float64 stays float64) even under bf16/fp16 autocast; norms are clamped
below at 1e-5 and artanh arguments at 1 − 1e-5, so points on or near the boundary give finite values and
finite gradients. Shapes: ``[..., D]`` points; the last dimension is the ball's.
"""

from __future__ import annotations

import functools

import torch

from ..errors import ConfigError

MIN_NORM = 1e-5
MAX_ARTANH = 1 - 1e-5
BALL_EPS = 1e-3  # projection keeps ‖x‖ ≤ (1 − BALL_EPS)/√c


def check_curvature(c) -> None:
    """Raise ``ValueError`` unless ``c`` (the negated curvature) is positive and finite."""
    v = float(c.detach().min() if torch.is_tensor(c) else c)
    if not v > 0 or v == float("inf"):
        raise ConfigError(f"curvature parameter c must be > 0 (the ball has curvature -c), got {v}")


def float32_island(fn):
    """Run ``fn`` with autocast off and low-precision tensor arguments upcast to float32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        def up(a):
            return a.float() if torch.is_tensor(a) and a.dtype in (torch.float16, torch.bfloat16) else a

        args = [up(a) for a in args]
        kwargs = {k: up(v) for k, v in kwargs.items()}
        dev = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        with torch.autocast(dev, enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def _sqrt(c, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(c, dtype=like.dtype, device=like.device).sqrt()


def _norm(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    return x.norm(dim=-1, keepdim=keepdim).clamp_min(MIN_NORM)


def _artanh(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh(x.clamp(-MAX_ARTANH, MAX_ARTANH))


@float32_island
def mobius_add(x: torch.Tensor, y: torch.Tensor, c) -> torch.Tensor:
    """x ⊕_c y, [..., D] x [..., D] -> [..., D]."""
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    den = 1 + 2 * c * xy + c**2 * x2 * y2
    return num / den.clamp_min(MIN_NORM)


@float32_island
def expmap0(v: torch.Tensor, c) -> torch.Tensor:
    """Exponential map at the origin, tangent [..., D] -> ball [..., D]: tanh(√c‖v‖) v / (√c‖v‖)."""
    sc = _sqrt(c, v)
    n = _norm(v)
    return torch.tanh(sc * n) * v / (sc * n)


@float32_island
def logmap0(y: torch.Tensor, c) -> torch.Tensor:
    """Logarithmic map at the origin, ball [..., D] -> tangent [..., D]: artanh(√c‖y‖) y / (√c‖y‖)."""
    sc = _sqrt(c, y)
    n = _norm(y)
    return _artanh(sc * n) * y / (sc * n)


@float32_island
def project(x: torch.Tensor, c, eps: float = BALL_EPS) -> torch.Tensor:
    """Pull points back inside the ball: ‖x‖ ≤ (1 − eps)/√c, [..., D] -> [..., D]."""
    maxn = (1 - eps) / _sqrt(c, x)
    n = _norm(x)
    return torch.where(n > maxn, x / n * maxn, x)


@float32_island
def dist(x: torch.Tensor, y: torch.Tensor, c) -> torch.Tensor:
    """Geodesic distance, [..., D] x [..., D] -> [...]:
    (2/√c) asinh(√c‖x−y‖ / √((1−c‖x‖²)(1−c‖y‖²))), equal to (2/√c) artanh(√c‖(−x)⊕y‖)."""
    sc = _sqrt(c, x)
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    d2 = ((x - y) ** 2).sum(-1)
    return _from_sq(d2, x2, y2, c, sc)


def _from_sq(d2: torch.Tensor, x2: torch.Tensor, y2: torch.Tensor, c, sc: torch.Tensor) -> torch.Tensor:
    lo = 1 - MAX_ARTANH  # conformal factors stay positive for points on or beyond the boundary
    den = ((1 - c * x2).clamp_min(lo) * (1 - c * y2).clamp_min(lo)).sqrt()
    # sqrt(d2 + tiny) keeps the gradient finite at x == y
    return 2 / sc * torch.asinh(sc * (d2.clamp_min(0) + 1e-12).sqrt() / den)


@float32_island
def dist_mobius(x: torch.Tensor, y: torch.Tensor, c) -> torch.Tensor:
    """The same distance by its definition, (2/√c) artanh(√c‖(−x)⊕y‖) (for tests and reference)."""
    sc = _sqrt(c, x)
    return 2 / sc * _artanh(sc * mobius_add(-x, y, c).norm(dim=-1))


@float32_island
def pairwise_dist(x: torch.Tensor, y: torch.Tensor, c) -> torch.Tensor:
    """All distances, [N, D] x [M, D] -> [N, M], from ‖x‖², ‖y‖² and x·yᵀ (no [N, M, D] tensor)."""
    sc = _sqrt(c, x)
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    d2 = x2[:, None] + y2[None, :] - 2 * x @ y.t()
    return _from_sq(d2, x2[:, None], y2[None, :], c, sc)


@float32_island
def to_klein(x: torch.Tensor, c) -> torch.Tensor:
    """Poincaré -> Klein coordinates: 2x / (1 + c‖x‖²)."""
    return 2 * x / (1 + c * (x * x).sum(-1, keepdim=True))


@float32_island
def from_klein(k: torch.Tensor, c) -> torch.Tensor:
    """Klein -> Poincaré coordinates: k / (1 + √(1 − c‖k‖²)). Near the boundary 1 − c‖k‖² cancels in float32;
    :func:`midpoint` does not go through Klein coordinates for that reason."""
    return k / (1 + (1 - c * (k * k).sum(-1, keepdim=True)).clamp_min(MIN_NORM).sqrt())


def _midpoint_sums(x: torch.Tensor, w: torch.Tensor | None, reduce, c) -> torch.Tensor:
    """The Einstein midpoint from per-point terms, in a form without cancellation near the boundary.

    With a_i = 1 − c‖p_i‖², weights ω_i (1 when ``w`` is None) and u_i = ω_i/a_i: γ_i = (1 + c‖p_i‖²)/a_i,
    Σω_iγ_ik_i = N = 2Σu_ip_i and S = Σω_iγ_i = Σu_i(1 + c‖p_i‖²). The Klein midpoint is m = N/S and the ball
    point m/(1 + √(1 − c‖m‖²)) = N/(S + √Δ) with Δ = S² − c‖N‖² = Ω² + 4cU·Σu_i‖p_i − q‖² (Ω = Σω_i, U = Σu_i,
    q = Σu_ip_i/U): a sum of non-negative terms, where S² − c‖N‖² (or 1 − c‖m‖²) cancels in float32.
    ``reduce(t)`` sums per-point rows ``[..., n, ..., k]`` into per-midpoint rows (over a dimension, or per group)
    and ``reduce.expand(r)`` takes per-midpoint rows back to the points. x ``[..., n, ..., D]``, w broadcastable
    to ``[..., n, ..., 1]`` -> the reduced shape ``[..., D]``."""
    x2 = (x * x).sum(-1, keepdim=True)
    om = torch.ones_like(x2) if w is None else w
    u = om / (1 - c * x2).clamp_min(MIN_NORM)
    up = reduce(u * x)
    big_u = reduce(u)
    q = up / big_u.clamp_min(MIN_NORM)
    spread = reduce(u * ((x - reduce.expand(q)) ** 2).sum(-1, keepdim=True))
    delta = (reduce(om) ** 2 + 4 * c * big_u * spread).clamp_min(MIN_NORM**4)
    s = reduce(u * (1 + c * x2))
    return 2 * up / (s + delta.sqrt()).clamp_min(MIN_NORM)


class _DimSum:
    """Sum over one dimension (``reduce`` of :func:`_midpoint_sums`) and its broadcast back."""

    def __init__(self, dim: int):
        self.dim = dim

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t.sum(self.dim)

    def expand(self, r: torch.Tensor) -> torch.Tensor:
        return r.unsqueeze(self.dim)


class _GroupSum:
    """Sum of rows per group id, [N, k] -> [G, k] (``reduce`` of :func:`_midpoint_sums`), and the gather back."""

    def __init__(self, group: torch.Tensor, num_groups: int):
        self.group, self.num_groups = group, num_groups

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.num_groups, t.shape[-1], dtype=t.dtype, device=t.device)
        return out.index_add_(0, self.group, t)

    def expand(self, r: torch.Tensor) -> torch.Tensor:
        return r[self.group]


@float32_island
def midpoint(x: torch.Tensor, c, dim: int = 0, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Einstein midpoint (HypAvg) of the points along ``dim``: in Klein coordinates k_i with Lorentz factors
    γ_i, m = Σ w_i γ_i k_i / Σ w_i γ_i, mapped back to the ball. Equals geoopt's ``weighted_midpoint``.
    γ_i = (1 + c‖p_i‖²)/(1 − c‖p_i‖²) comes from the Poincaré point and the map back is computed without
    cancellation (:func:`_midpoint_sums`), so float32 stays accurate at the ball's clip radius.
    ``[..., n, ..., D]`` -> the same shape without ``dim``."""
    if dim < 0:
        dim += x.dim()
    if dim == x.dim() - 1:
        raise ConfigError("dim must not be the last (the ball's) dimension")
    w = None
    if weights is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        w = weights.to(x.dtype).view(shape)
    return _midpoint_sums(x, w, _DimSum(dim), c)


@float32_island
def group_midpoint(x: torch.Tensor, group: torch.Tensor, num_groups: int, c) -> torch.Tensor:
    """Einstein midpoint of each group of rows (as :func:`midpoint`): [N, D], group ids [N] in [0, G) -> [G, D].
    Groups without members come out at the origin."""
    return _midpoint_sums(x, None, _GroupSum(group, num_groups), c)


@float32_island
def max_margin(eta, theta, c):
    """Largest viable margin between two prototypes at Euclidean norm η separated by angle θ (Theorem 1):
    (1/√c) asinh(2√c η sin(θ/2) / (1 − cη²)), half their geodesic distance. Tensors or floats."""
    eta, theta = torch.as_tensor(eta, dtype=torch.float64), torch.as_tensor(theta, dtype=torch.float64)
    sc = torch.as_tensor(c, dtype=torch.float64).sqrt()
    return torch.asinh(2 * sc * eta * torch.sin(theta / 2) / (1 - c * eta**2)) / sc


def euclidean_margin_cap(eta, logit_scale):
    """A cosine classifier's margin cap 2λη² at embedding norm η with logit scale λ (docs/method.md §2)."""
    return 2 * logit_scale * torch.as_tensor(eta, dtype=torch.float64) ** 2
