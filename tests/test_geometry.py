"""The Poincaré ball against geoopt and against identities, over seeds x dtypes x curvatures."""

import math

import geoopt
import pytest
import torch

from hirobust.geometry import poincare as P

SEEDS = [0, 1, 2]
DTYPES = [torch.float32, torch.float64]
CURV = [0.3, 1.0, 2.5]


def _points(n, d, c, dtype, seed, max_frac=0.95):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g, dtype=dtype)
    r = torch.rand(n, 1, generator=g, dtype=dtype) * max_frac / math.sqrt(c)
    return v / v.norm(dim=-1, keepdim=True) * r


def _tol(dtype):
    return {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-8, "rtol": 1e-8}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", CURV)
def test_agrees_with_geoopt(seed, dtype, c):
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=dtype))
    x, y = _points(20, 8, c, dtype, seed), _points(20, 8, c, dtype, seed + 100)
    v = torch.randn(20, 8, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * 0.7
    tol = _tol(dtype)
    assert torch.allclose(P.mobius_add(x, y, c), ball.mobius_add(x, y), **tol)
    assert torch.allclose(P.expmap0(v, c), ball.expmap0(v, project=False), **tol)
    assert torch.allclose(P.logmap0(x, c), ball.logmap0(x), **tol)
    assert torch.allclose(P.dist(x, y, c), ball.dist(x, y), **tol)
    assert torch.allclose(P.midpoint(x, c, dim=0), ball.weighted_midpoint(x, reducedim=[0], project=False), **tol)
    w = torch.rand(20, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    expected = ball.weighted_midpoint(x, w, reducedim=[0], project=False)
    assert torch.allclose(P.midpoint(x, c, dim=0, weights=w), expected, **tol)
    far = _points(5, 8, c, dtype, seed, max_frac=3.0)
    proj = P.project(far, c)  # same direction as geoopt's projx; our margin ξ = 1e-3 (geoopt's is dtype-dependent)
    assert torch.allclose(proj / proj.norm(dim=-1, keepdim=True), ball.projx(far) / ball.projx(far).norm(dim=-1,
                          keepdim=True), **tol)
    assert (proj.norm(dim=-1) <= (1 - 1e-3) / math.sqrt(c) + 1e-6).all()
    assert torch.equal(P.project(x, c), torch.where(x.norm(dim=-1, keepdim=True) > (1 - 1e-3) / math.sqrt(c),
                                                    P.project(x, c), x))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", CURV)
def test_identities(seed, dtype, c):
    x, y = _points(16, 6, c, dtype, seed), _points(16, 6, c, dtype, seed + 1)
    tol = _tol(dtype)
    assert torch.allclose(P.expmap0(P.logmap0(x, c), c), x, **tol)  # exp/log inverse
    # tangent vectors with √c‖v‖ of order 1 (log(exp v) is ill-conditioned once tanh saturates)
    v = torch.randn(16, 6, dtype=dtype, generator=torch.Generator().manual_seed(seed)) * 0.5 / math.sqrt(c)
    assert torch.allclose(P.logmap0(P.expmap0(v, c), c), v, atol=1e-4 if dtype == torch.float32 else 1e-8)
    assert torch.allclose(P.dist(x, y, c), P.dist_mobius(x, y, c), **tol)  # the two distance formulas
    assert torch.allclose(P.dist(x, y, c), P.dist(y, x, c), **tol)
    pw = P.pairwise_dist(x, y, c)
    assert pw.shape == (16, 16)
    assert torch.allclose(pw, P.dist(x[:, None], y[None], c), **tol)
    zero = torch.zeros_like(v)
    assert torch.allclose(P.dist(zero, P.expmap0(v, c), c), 2 * v.norm(dim=-1), **tol)  # d(0, exp0 v) = 2|v|
    assert torch.allclose(P.mobius_add(zero, x, c), x, **tol)
    assert P.dist(x, x, c).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_midpoint_of_identical_points_and_norm_shrinks(dtype):
    c = 1.0
    p = _points(1, 5, c, dtype, 3)
    same = p.expand(7, -1)
    assert torch.allclose(P.midpoint(same, c), p[0], **_tol(dtype))
    for seed in SEEDS:
        x = _points(9, 5, c, dtype, seed)
        m = P.midpoint(x, c)
        assert m.norm() < x.norm(dim=-1).mean()
    groups = torch.tensor([0, 0, 1, 1, 1])
    x = _points(5, 4, c, dtype, 5)
    gm = P.group_midpoint(x, groups, 2, c)
    assert torch.allclose(gm[0], P.midpoint(x[:2], c), **_tol(dtype))
    assert torch.allclose(gm[1], P.midpoint(x[2:], c), **_tol(dtype))


def _deep_points(n, d, seed, spread):
    """n points at hyperbolic depth 6 (‖p‖ = tanh(3), c = 1: the depth of a tangent norm clipped at 3), float64,
    directions around a common one (``spread`` small: a tight cluster, whose midpoint is deep too)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(d, generator=g, dtype=torch.float64)
    v = base + spread * torch.randn(n, d, generator=g, dtype=torch.float64) * base.norm() / math.sqrt(d)
    return v / v.norm(dim=-1, keepdim=True) * math.tanh(3.0)


def _value_and_grad(fn, x, r):
    """fn(x) and the gradient of the fixed linear functional Σ r·fn(x) with respect to x."""
    x = x.clone().requires_grad_(True)
    m = fn(x)
    (g,) = torch.autograd.grad((m * r.to(m.dtype)).sum(), x)
    return m.detach().double(), g.double()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("spread", [0.1, 0.5, 3.0])
def test_float32_midpoint_is_accurate_at_depth_6(seed, spread):
    """Klein-coordinate Lorentz factors lose float32 precision here (midpoint off by ~1e-4, gradient by ~5e-3);
    the Poincaré-side form stays within 1e-5 and 1e-4 of float64 (geoopt's, for the value and the gradient)."""
    ball = geoopt.PoincareBall(c=torch.tensor(1.0, dtype=torch.float64))
    x = _deep_points(16, 32, seed, spread)
    groups = torch.arange(16) % 3
    cases = [(lambda a: P.midpoint(a, 1.0), lambda a: ball.weighted_midpoint(a, reducedim=[0], project=False)),
             (lambda a: P.group_midpoint(a, groups, 3, 1.0),
              lambda a: torch.stack([ball.weighted_midpoint(a[groups == k], reducedim=[0], project=False)
                                     for k in range(3)]))]
    for ours, ref in cases:
        r = torch.randn(ref(x).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(100 + seed))
        m64, g64 = _value_and_grad(ref, x, r)
        m32, g32 = _value_and_grad(ours, x.float(), r)
        assert (m32 - m64).abs().max() < 1e-5
        assert (g32 - g64).norm() / g64.norm() < 1e-4
        assert torch.allclose(_value_and_grad(ours, x, r)[1], g64, atol=1e-9)  # float64: the same gradient


@pytest.mark.parametrize("dtype", DTYPES)
def test_boundary_points_give_finite_values_and_gradients(dtype):
    c = 1.0
    v = torch.randn(6, 4, dtype=dtype) * 50  # exp0 saturates at the boundary
    x = P.expmap0(v, c).requires_grad_(True)
    on_boundary = (v / v.norm(dim=-1, keepdim=True)).requires_grad_(True)  # exactly ‖x‖ = 1/√c
    for a in (x, on_boundary):
        out = P.dist(a, a.flip(0), c).sum() + P.logmap0(a, c).sum() + P.pairwise_dist(a, a, c).sum()
        out = out + P.midpoint(a, c).sum() + P.dist(a, a, c).sum()
        assert torch.isfinite(out)
        (g,) = torch.autograd.grad(out, a)
        assert torch.isfinite(g).all()
    z = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(P.expmap0(z, c).sum() + P.logmap0(z, c).sum(), z)
    assert torch.isfinite(g).all()


def test_float32_islands_under_autocast():
    x = _points(4, 8, 1.0, torch.float32, 0).bfloat16()
    y = _points(4, 8, 1.0, torch.float32, 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = P.pairwise_dist(x, y, 1.0)
    assert d.dtype == torch.float32
    assert torch.allclose(d, P.pairwise_dist(x.float(), y.float(), 1.0))


@pytest.mark.parametrize("c", [0.0, -1.0, float("nan")])
def test_bad_curvature(c):
    with pytest.raises(ValueError, match="must be > 0"):
        P.check_curvature(c)


@pytest.mark.parametrize("c", CURV)
def test_max_margin_is_half_the_distance_and_beats_the_euclidean_cap(c):
    r = 1 / math.sqrt(c)
    for eta_frac in (0.1, 0.5, 0.9, 0.99):
        eta = eta_frac * r
        for theta in (0.1, 0.7, math.pi / 2, math.pi):
            x = torch.tensor([eta, 0.0], dtype=torch.float64)
            y = torch.tensor([eta * math.cos(theta), eta * math.sin(theta)], dtype=torch.float64)
            assert torch.allclose(P.max_margin(eta, theta, c), P.dist(x, y, c) / 2, atol=1e-9)
    etas = torch.linspace(0.5, 0.999999, 50, dtype=torch.float64) * r
    m = P.max_margin(etas, math.pi / 3, c)
    assert (m[1:] > m[:-1]).all() and m[-1] > 5 / math.sqrt(c)  # grows without bound towards 1/√c
    # the cosine classifier's cap 2λη² is bounded by 2λ/c on the ball; near the boundary the hyperbolic margin wins
    # for λ = 1 (unit-scale logits, the same scale as distances)
    near = torch.tensor(0.9999 * r, dtype=torch.float64)
    assert P.max_margin(near, math.pi / 3, c) > P.euclidean_margin_cap(near, 1.0)
