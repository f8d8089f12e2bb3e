"""HiRo: its losses against the formulas computed here independently (geoopt for the geometry)."""

import copy
import math

import geoopt
import pytest
import torch
import torch.nn.functional as F

from hirobust.hierarchy import Forest, Hierarchy
from hirobust.methods import build_method
from hirobust.models.zeroshot import build_cosine_classifier


def _hiro(tiny_clip, forest, templates, **options):
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    clf = build_cosine_classifier(clip, forest, templates)
    return build_method("hiro", clf, forest, {"eps": 4 / 255, **options}, clip=clip), clip


def _batch(ds, n=24, seed=0):
    return next(ds.batches(n, shuffle=True, generator=torch.Generator().manual_seed(seed)))


def test_hita_matches_the_formula(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, perturbation="none", lambda_vic=0.0, lambda_gap=0.0)
    x, y = _batch(train)
    out = m(x, y)
    tree = forest[0]
    ball = geoopt.PoincareBall(c=1.0)
    with torch.no_grad():
        hyp = m.hyp
        phi = hyp.image(m.model.image_features(x))
        psi = [hyp.text(m.model.head().pooled[sum(m.model.head().sizes[:lvl]):sum(m.model.head().sizes[:lvl + 1])])
               for lvl in range(3)]
        tau = hyp.tau
        # level embeddings: level 0 = images; level l = midpoint of the level-(l-1) embeddings of the children
        embs, nodes = [phi], [y.tolist()]
        for lvl in (1, 2):
            parent = tree.parent_index(lvl - 1)
            groups = sorted({int(parent[k]) for k in nodes[-1]})
            embs.append(torch.stack([ball.weighted_midpoint(embs[-1][[i for i, k in enumerate(nodes[-1])
                                                                       if int(parent[k]) == g]], reducedim=[0])
                                     for g in groups]))
            nodes.append(groups)
        total = 0.0
        for lvl in range(3):
            ce = []
            for e, k in zip(embs[lvl], nodes[lvl]):
                cands, target = [], None
                for j in range(tree.num_nodes(lvl)):
                    if j == k:
                        target = len(cands)
                    cands.append(psi[lvl][j])
                if lvl >= 1:  # HNSA: level l-1 nodes that are not children of k
                    cands += [psi[lvl - 1][j] for j in range(tree.num_nodes(lvl - 1))
                              if int(tree.parent_index(lvl - 1)[j]) != k]
                if lvl < 2:  # HNSA: level l+1 nodes other than the parent of k
                    cands += [psi[lvl + 1][j] for j in range(tree.num_nodes(lvl + 1))
                              if j != int(tree.parent_index(lvl)[k])]
                logits = -ball.dist(e[None], torch.stack(cands)) / tau
                ce.append(F.cross_entropy(logits[None], torch.tensor([target])))
            total += (1 - lvl / 3) * torch.stack(ce).mean()
    assert torch.allclose(out["hita"], total, rtol=1e-4), (out["hita"], total)
    assert torch.allclose(out["loss"], total, rtol=1e-4)


def test_vic_and_gap_match_the_formulas(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, perturbation="none", zeta_vic=0.5, zeta_gap=0.3)
    x, y = _batch(train, seed=1)
    out = m(x, y)
    tree = forest[0]
    ball = geoopt.PoincareBall(c=1.0)
    with torch.no_grad():
        phi = m.hyp.image(m.model.image_features(x))
        head = m.model.head()
        psi_all = m.hyp.text(head.pooled)
        vic = F.relu(ball.dist(phi, psi_all[y]) - 0.5).mean()
        sizes = head.sizes
        off = [0, sizes[0], sizes[0] + sizes[1]]
        hinges = []
        for lvl in (0, 1):
            for j in range(sizes[lvl]):
                p = int(tree.parent_index(lvl)[j])
                hinges.append(F.relu(psi_all[off[lvl + 1] + p].norm() - psi_all[off[lvl] + j].norm() + 0.3))
        gap_label = torch.stack(hinges).mean()
    assert torch.allclose(out["vic"], vic, rtol=1e-4, atol=1e-6)
    assert torch.allclose(out["gap_label"], gap_label, rtol=1e-4, atol=1e-6)
    assert torch.allclose(out["loss"], out["hita"] + out["vic"] + out["gap_label"] + out["gap_intra"], rtol=1e-5)


def test_gap_intra_and_singleton_groups(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, perturbation="none", zeta_gap=0.2)
    x, y = _batch(train, n=64)
    keep = [i for i, v in enumerate(y.tolist()) if v in (0, 2, 4, 6)]  # every level-1 parent has one child class
    x1, y1 = x[keep][:1], y[keep][:1]  # one image: every group has one member
    out = m(x1, y1)
    assert out["gap_intra"] == 0 and torch.isfinite(out["loss"])
    out = m(x, y)
    ball = geoopt.PoincareBall(c=1.0)
    tree = forest[0]
    with torch.no_grad():
        phi = m.hyp.image(m.model.image_features(x))
        parent = tree.ancestor_index(1)[y]
        hinges = []
        l1 = {}
        for g in sorted(set(parent.tolist())):
            members = phi[parent == g]
            l1[g] = ball.weighted_midpoint(members, reducedim=[0])
            if len(members) > 1:
                hinges += [F.relu(l1[g].norm() - mm.norm() + 0.2) for mm in members]
        gp = tree.parent_index(1)
        for g2 in sorted({int(gp[g]) for g in l1}):
            kids = [l1[g] for g in l1 if int(gp[g]) == g2]
            mid = ball.weighted_midpoint(torch.stack(kids), reducedim=[0])
            if len(kids) > 1:
                hinges += [F.relu(mid.norm() - k.norm() + 0.2) for k in kids]
        expected = torch.stack(hinges).mean()
    assert torch.allclose(out["gap_intra"], expected, rtol=1e-4, atol=1e-6)


def test_universal_perturbation_stays_in_both_balls(tiny_clip, synth, monkeypatch):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, eps=8 / 255, text_eps=1e-3)
    x, y = _batch(train)
    m.prepare(x, y)
    w = m._text_base()
    xa, dt = m._attack(x, y, w, torch.Generator().manual_seed(0), None)
    assert (xa - x).abs().max() <= 8 / 255 + 1e-6 and 0 <= xa.min() and xa.max() <= 1
    assert dt.abs().max() <= 1e-3 + 1e-6 and dt.shape == w.shape  # (w + δ) − w rounds in float32
    assert all(p.grad is None for _, p in m.trainable_parameters())
    with torch.no_grad():  # the attack raises the HITA loss
        clean = sum(m.level_terms(m.hyp.image(m.model.image_features(x)), m._psi(w), y)[0])
        adv = sum(m.level_terms(m.hyp.image(m.model.image_features(xa)), m._psi(w + dt), y)[0])
    assert adv > clean


@pytest.mark.parametrize("perturbation", ["leaf", "per_level", "universal"])
def test_perturbation_variants_train(tiny_clip, synth, perturbation):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, perturbation=perturbation, text_delta="shared")
    x, y = _batch(train)
    out = m(x, y, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for n, p in m.trainable_parameters())


def test_forest_counts_the_leaf_term_once(tiny_clip):
    paths_a = {"a": ["x"], "b": ["x"], "c": ["y"], "d": ["y"]}
    paths_b = {"a": ["p"], "b": ["q"], "c": ["p"], "d": ["q"]}
    forest = Forest([Hierarchy.from_paths(paths_a, name="t1"), Hierarchy.from_paths(paths_b, name="t2")])
    templates = ["a photo of a {}."]
    x = torch.rand(8, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    once, _ = _hiro(tiny_clip, forest, templates, perturbation="none", lambda_vic=0, lambda_gap=0)
    twice, _ = _hiro(tiny_clip, forest, templates, perturbation="none", lambda_vic=0, lambda_gap=0,
                     forest_leaf_once=False)
    single = [_hiro(tiny_clip, Forest([t]), templates, perturbation="none", lambda_vic=0, lambda_gap=0)[0]
              for t in forest]
    for mm in (once, twice, *single):
        mm.prepare(x, y)
        mm.hyp.log_alpha_img.data.fill_(0.0)
        mm.hyp.log_alpha_txt.data.fill_(0.0)
    with torch.no_grad():
        lo, hi = once(x, y)["hita"], twice(x, y)["hita"]
        s = [mm(x, y)["hita"] for mm in single]
        second = single[1]  # the second tree's own leaf term (its HNSA negatives are its own level-1 nodes)
        phi = second.hyp.image(second.model.image_features(x))
        leaf2 = second.level_terms(phi, second._psi(second._text_base()), y)[0][0]
    assert torch.allclose(hi, s[0] + s[1], rtol=1e-5)  # plain sum over trees
    assert torch.allclose(lo, s[0] + s[1] - leaf2, rtol=1e-5)  # the leaf term once (the first tree's)


def test_bad_inputs(tiny_clip, synth):
    train, _, forest = synth
    flat = Forest([Hierarchy.from_paths({n: [] for n in train.classnames}, num_levels=1, name="flat")])
    with pytest.raises(ValueError, match="at least 2 levels"):
        _hiro(tiny_clip, flat, train.templates)
    with pytest.raises(ValueError, match="must be > 0"):
        _hiro(tiny_clip, forest, train.templates, curvature=0.0)
    with pytest.raises(ValueError, match="hnsa='sideways'"):
        _hiro(tiny_clip, forest, train.templates, hnsa="sideways")


def test_nan_embeddings_are_a_clear_error(tmp_path, tiny_clip, synth):
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates)
    bad = copy.copy(train)
    bad.images = train.images.clone()
    with torch.no_grad():  # a poisoned weight makes every embedding NaN
        m.model.visual.proj.data[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        Trainer(TrainConfig(epochs=1, batch_size=16, log_every=1)).fit(m, bad, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint").exists()


def test_hiro_resume_is_exact(tmp_path, tiny_clip, synth):
    from hirobust.settings import TrainConfig
    from hirobust.train import Interrupted, Trainer

    train, _, forest = synth
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, ckpt_every=2)
    full, _ = _hiro(tiny_clip, forest, train.templates)
    Trainer(cfg).fit(full, train, tmp_path / "a", progress=False)
    part, _ = _hiro(tiny_clip, forest, train.templates)

    def stop(step, _):
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        Trainer(cfg).fit(part, train, tmp_path / "b", progress=False, callback=stop)
    resumed, _ = _hiro(tiny_clip, forest, train.templates)
    Trainer(cfg).fit(resumed, train, tmp_path / "b", resume=True, progress=False)
    a, b = dict(full.trainable_state()), dict(resumed.trainable_state())
    assert all(torch.equal(a[k], b[k]) for k in a)


DIAGNOSTICS = ("gap_label_active", "gap_intra_active", "alpha_img", "alpha_txt", "tau", "delta_t_rel")


def test_diagnostics_are_logged_per_step(tmp_path, tiny_clip, synth):
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, text_eps=0.01, text_eps_mode="relative")
    w0 = m._text_base().detach()  # the init; the first step's forward runs before its optimiser step
    alpha_txt = float(m.hyp.log_alpha_txt.detach().exp())
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, log_every=1, max_steps=3)
    history = Trainer(cfg).fit(m, train, tmp_path, progress=False)["history"]
    L = forest[0].num_levels - 1
    names = [f"depth_{k}_L{lvl}" for k in ("text", "img") for lvl in range(L + 1)] + list(DIAGNOSTICS)
    assert len(history) == 3 and all(set(names) <= set(row) for row in history)
    assert all(math.isfinite(row[k]) for row in history for k in names)
    first = history[0]
    leaf_depth = 2 * w0[: forest[0].num_nodes(0)].norm(dim=-1).clamp(max=m.cfg.clip_r)  # d(0, exp₀ w) = 2‖w‖
    assert leaf_depth.median() == pytest.approx(m.cfg.init_depth, abs=1e-3)  # the init: the median leaf text
    assert first["depth_text_L0"] == pytest.approx(float(leaf_depth.mean()), abs=1e-3)  # the diagnostic: the mean
    assert 0 < first["delta_t_rel"] <= 0.01 + 1e-6
    assert first["alpha_txt"] == pytest.approx(alpha_txt, rel=1e-6)
    assert all(0 <= row[k] <= 1 for row in history for k in ("gap_label_active", "gap_intra_active"))


def test_diagnostics_match_their_definitions(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, perturbation="none", zeta_gap=0.2)
    x, y = _batch(train, n=32)
    out = m(x, y)
    ball = geoopt.PoincareBall(c=1.0)
    tree, head = forest[0], m.model.head()
    with torch.no_grad():
        psi = m.hyp.text(head.pooled)
        phi = m.hyp.image(m.model.image_features(x))
        start = 0
        for lvl in range(tree.num_levels):
            n = tree.num_nodes(lvl)
            depth = ball.dist0(psi[start : start + n]).mean()
            assert out[f"depth_text_L{lvl}"] == pytest.approx(float(depth), rel=1e-4)
            start += n
        assert out["depth_img_L0"] == pytest.approx(float(ball.dist0(phi).mean()), rel=1e-4)
        groups = tree.ancestor_index(1)[y]
        mids = torch.stack([ball.weighted_midpoint(phi[groups == g], reducedim=[0]) for g in groups.unique()])
        assert out["depth_img_L1"] == pytest.approx(float(ball.dist0(mids).mean()), rel=1e-4)
        norms = psi.norm(dim=-1)
        off = [0, tree.num_nodes(0), tree.num_nodes(0) + tree.num_nodes(1)]
        active = [float(norms[off[lvl + 1] + int(tree.parent_index(lvl)[j])] - norms[off[lvl] + j] + 0.2 > 0)
                  for lvl in (0, 1) for j in range(tree.num_nodes(lvl))]
    assert out["gap_label_active"] == pytest.approx(sum(active) / len(active))
    assert out["alpha_img"] == pytest.approx(float(m.hyp.log_alpha_img.detach().exp()))
    assert out["delta_t_rel"] == 0
    hita_off = _hiro(tiny_clip, forest, train.templates, perturbation="none", hita=False)[0](x, y)
    assert hita_off["depth_img_L1"] == 0 and hita_off["depth_img_L2"] == 0 and hita_off["gap_intra_active"] == 0


def test_relative_text_eps_bounds_each_node_by_its_norm(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, text_eps=0.05, text_eps_mode="relative")
    x, y = _batch(train)
    m.prepare(x, y)
    w = m._text_base().detach()
    _, dt = m._attack(x, y, w, torch.Generator().manual_seed(0), None)
    bound = 0.05 * w.norm(dim=-1, keepdim=True) / math.sqrt(w.shape[-1])
    assert (dt.abs() <= bound * (1 + 1e-5)).all() and (dt.abs() > 0.5 * bound).float().mean() > 0.5
    out = m(x, y, generator=torch.Generator().manual_seed(0))
    assert 0 < out["delta_t_rel"] <= 0.05 * (1 + 1e-5)
    paper = _hiro(tiny_clip, forest, train.templates)[0](x, y, generator=torch.Generator().manual_seed(0))
    assert paper["delta_t_rel"] < 0.05 and paper["delta_t_rel"] > 0  # absolute 2e-4: a tiny fraction of ‖w‖
    with pytest.raises(ValueError, match="text_eps_mode='fraction'"):
        _hiro(tiny_clip, forest, train.templates, text_eps_mode="fraction")


def test_lr_scales_make_their_own_optimizer_groups(tiny_clip, synth):
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    train, _, forest = synth
    trainer = Trainer(TrainConfig(weight_decay=0.1, optimizer="adamw"))
    m, _ = _hiro(tiny_clip, forest, train.templates, lr_scale_head=10.0, lr_scale_text=0.5)
    named = list(m.trainable_parameters())
    opt = trainer.optimizer(named, m)
    scale_of = {id(p): (g["lr_scale"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert len(scale_of) == len(named)
    for n, p in named:
        expected = 10.0 if n.startswith("hyp.log_") else 0.5 if n.startswith("hyp.proj") else 1.0
        assert scale_of[id(p)] == (expected, 0.1 if p.dim() >= 2 else 0.0), n
    assert {n for n, _ in named if n.startswith("hyp.log_")} == {"hyp.log_alpha_img", "hyp.log_alpha_txt",
                                                                  "hyp.log_tau"}
    assert any(n == "hyp.proj" for n, _ in named)
    default, _ = _hiro(tiny_clip, forest, train.templates)  # defaults: today's two groups, in today's order
    groups = trainer.optimizer(list(default.trainable_parameters()), default).param_groups
    params = [p for _, p in default.trainable_parameters()]
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0]
    assert [list(map(id, g["params"])) for g in groups] == [[id(p) for p in params if p.dim() >= 2],
                                                            [id(p) for p in params if p.dim() < 2]]
    with pytest.raises(ValueError, match="lr_scale_head must be positive"):
        _hiro(tiny_clip, forest, train.templates, lr_scale_head=0.0)


def test_max_margin_plot_data():
    from hirobust.geometry.poincare import euclidean_margin_cap, max_margin

    assert max_margin(0.999, math.pi / 2, 1.0) > euclidean_margin_cap(0.999, 1.0)


def test_exported_run_rebuilds_the_same_poincare_classifier(tmp_path, tiny_clip, synth):
    from hirobust.models.rundir import load_classifier, save_run
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    train, test, forest = synth
    m, clip = _hiro(tiny_clip, forest, train.templates)
    Trainer(TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3)).fit(m, train, tmp_path, progress=False)
    save_run(tmp_path, m, clip, method_name="hiro", model_name="hirobust-tiny", source=None)
    rebuilt = load_classifier(str(tmp_path), forest, test.templates, test.prompt_names).eval()
    m.model.eval()
    x, _ = next(test.batches(16))
    with torch.no_grad():
        for a, b in zip(rebuilt(x), m.model(x)):
            assert torch.allclose(a, b, atol=1e-4)


def test_label_structure_is_computed_once_per_step_not_per_attack_iteration(tiny_clip, synth, monkeypatch):
    """``torch.unique`` (the batch's groups) synchronises with a GPU: a step calls it L times per tree, however
    many attack iterations it runs, and the per-level labels it uses are the hierarchy's."""
    train, _, forest = synth
    x, y = _batch(train)
    calls = []
    unique = torch.unique
    monkeypatch.setattr(torch, "unique", lambda *a, **k: calls.append(1) or unique(*a, **k))
    counts = []
    for steps in (1, 4):
        m, _ = _hiro(tiny_clip, forest, train.templates, steps=steps)
        m.prepare(x, y)
        calls.clear()
        m(x, y, generator=torch.Generator().manual_seed(0))
        counts.append(len(calls))
    assert counts == [forest[0].num_levels - 1] * 2
    ix = m.batch_index(y)[0]
    for lvl in range(forest[0].num_levels):
        assert torch.equal(ix["labels"][lvl], forest[0].labels(y, lvl))
