import pytest
import torch

from hirobust.attacks import ce, cw_margin, level_objective, pgd, targeted_ce


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 5))


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eps_ball_box_and_no_parameter_grad(norm, seed):
    model = _model()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(16, 3, 8, 8, generator=g)
    x[:4] = 0.0  # corners of the box
    x[4:8] = 1.0
    y = torch.randint(5, (16,), generator=g)
    eps = 8 / 255 if norm == "linf" else 0.5
    x_adv = pgd(lambda z: ce(model(z), y), x, eps, steps=7, alpha=eps / 2, norm=norm, generator=g)
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    assert not x_adv.requires_grad


def test_objective_increases_over_clean_and_random_noise():
    model = _model()
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    eps = 4 / 255
    clean = ce(model(x), y).mean()
    noise = ce(model(pgd(lambda z: ce(model(z), y), x, eps, steps=0)), y).mean()  # random start only
    adv = ce(model(pgd(lambda z: ce(model(z), y), x, eps, steps=10)), y).mean()
    assert adv > noise and adv > clean


def test_more_steps_do_not_weaken_the_attack():
    model = _model()
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    losses = [ce(model(pgd(lambda z: ce(model(z), y), x, 4 / 255, steps=k, generator=torch.Generator().manual_seed(0))),
                 y).mean() for k in (1, 5, 20)]
    assert losses[0] <= losses[1] + 1e-6 <= losses[2] + 2e-6


def test_targeted_and_cw_objectives():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 1])
    assert torch.allclose(cw_margin(logits, y), torch.tensor([-1.0, -2.0]))
    assert torch.allclose(targeted_ce(logits, torch.tensor([2, 2])), -ce(logits, torch.tensor([2, 2])))
    model = _model()
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    target = torch.full((32,), 3)
    x_adv = pgd(lambda z: targeted_ce(model(z), target), x, 16 / 255, steps=20)
    assert ce(model(x_adv), target).mean() < ce(model(x), target).mean()  # the target class got likelier


def test_momentum_steps_stay_in_ball():
    model = _model()
    x = torch.rand(8, 3, 8, 8)
    y = torch.zeros(8, dtype=torch.long)
    x_adv = pgd(lambda z: ce(model(z), y), x, 4 / 255, steps=5, alpha=1 / 255, momentum=0.9)
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-7


def test_zero_eps_and_zero_steps():
    model = _model()
    x = torch.rand(4, 3, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    assert torch.equal(pgd(lambda z: ce(model(z), y), x, 0.0, steps=5), x)
    assert torch.equal(pgd(lambda z: ce(model(z), y), x, 0.1, steps=0, random_start=False), x)


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -1.0}, "eps must be a number >= 0"), ({"eps": float("nan")}, "eps must"), ({"norm": "l1"}, "unknown norm"),
    ({"steps": -1}, "steps must"), ({"steps": 1.5}, "steps must be an integer"), ({"alpha": -1 / 255}, "alpha"),
    ({"x": torch.full((2, 3), 2.0)}, r"pixels in \[0, 1\]"), ({"x": torch.full((2, 3), float("nan"))}, "NaN"),
    ({"x": torch.zeros(2, 3, dtype=torch.uint8)}, "float tensor"), ({"x": torch.zeros(3)}, "batched")])
def test_bad_arguments_are_named(kwargs, match):
    args = {"x": torch.rand(2, 3, 8, 8), "eps": 0.1, "steps": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        pgd(lambda z: z.flatten(1).sum(1), **args)


def test_loss_must_be_per_sample():
    with pytest.raises(ValueError, match="per-sample loss"):
        pgd(lambda z: z.sum(), torch.rand(2, 3, 4, 4), 0.1, steps=1)


def test_level_objective_attacks_one_level(tiny_classifier, synth):
    clf, _ = tiny_classifier
    train, _, forest = synth
    tree = forest[0]
    x, y = next(train.batches(32))
    for level in range(tree.num_levels):
        yl = tree.labels(y, level)
        fn = level_objective(clf, level, yl)
        assert torch.allclose(fn(x), ce(clf(x)[level], yl))
        x_adv = pgd(fn, x, 8 / 255, steps=5)
        assert fn(x_adv).mean() > fn(x).mean()
