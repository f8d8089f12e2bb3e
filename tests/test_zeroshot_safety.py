"""HiRo's zero-shot safety: held-out folds, the readout ablations of the diagnosis, level depths, the W_T anchor."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hirobust.errors import ConfigError
from hirobust.hierarchy import load_tree
from hirobust.hierarchy.folds import check_folds, make_folds, superclasses_without_seen_leaf
from hirobust.methods import build_method
from hirobust.models.zeroshot import build_cosine_classifier


def _hiro(tiny_clip, forest, templates, **options):
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    clf = build_cosine_classifier(clip, forest, templates)
    return build_method("hiro", clf, forest, {"eps": 4 / 255, **options}, clip=clip), clip


def _train(m, train, steps=3, lr=1e-2):
    opt = torch.optim.Adam([p for _, p in m.trainable_parameters()], lr=lr)
    for s in range(steps):
        x, y = next(train.batches(24, shuffle=True, generator=torch.Generator().manual_seed(s)))
        opt.zero_grad()
        m(x, y, generator=torch.Generator().manual_seed(s))["loss"].backward()
        opt.step()
        m.after_step()


def _round_trips(tmp_path, m, clip, forest, test):
    """The trained method saved as a run directory rebuilds a classifier with the same logits at every level."""
    from hirobust.models.rundir import load_classifier, save_run

    save_run(tmp_path, m, clip, method_name="hiro", model_name="hirobust-tiny", source=None)
    rebuilt = load_classifier(str(tmp_path), forest, test.templates).eval()
    x, _ = next(test.batches(8))
    with torch.no_grad():
        return all(torch.allclose(a, b, atol=1e-4) for a, b in zip(rebuilt(x), m.model.eval()(x)))


# ---------------------------------------------------------------------- folds
@pytest.mark.parametrize("tree", ["season", "wordnet", "garment-type"])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_folds_partition_the_leaves_and_keep_a_seen_leaf_per_superclass(tree, k):
    t = load_tree("fashion-mnist", tree)
    folds = make_folds(t, k, seed=0)
    assert sorted(c for f in folds for c in f) == sorted(t.leaves)  # every leaf held out exactly once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    anc = t.ancestor_index(1).tolist()
    sizes = {a: anc.count(a) for a in set(anc)}
    for f in folds:  # a superclass with >= 2 leaves keeps a seen one in every fold
        lost = superclasses_without_seen_leaf(t, f)
        assert all(sizes[t.nodes(1).index(n)] == 1 for n in lost)
    assert make_folds(t, k, seed=0) == folds and make_folds(t, k, seed=1) != folds or k == len(t.leaves)


@pytest.mark.parametrize("folds,cover,match", [
    ([["dress", "nosuch"]], False, "nosuch"),
    ([[]], False, "no leaf"),
    ([["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]], False,
     "nothing is left"),
    ([["dress", "coat", "sneaker"]], True, "does not hold out|do not hold out"),
])
def test_bad_folds_are_one_clear_error(folds, cover, match):
    with pytest.raises(ConfigError, match=match):
        check_folds(load_tree("fashion-mnist", "season"), folds, cover=cover)


def test_bad_folds_in_a_config_fail_before_any_training(tmp_path, monkeypatch):
    from hirobust.app import study
    from hirobust.app.cli import main

    monkeypatch.setattr(study, "_finetune_cell", lambda *a, **k: pytest.fail("trained despite bad folds"))
    for bad in ("folds.held_out=[[dress,nosuch]]", "folds.held_out=[[dress,coat]]", "folds.k=1", "folds.k=11",
                "folds.only=[5]"):
        assert main(["--quiet", "zeroshot", "--out", str(tmp_path / "z"), bad]) == 2, bad
    assert not (tmp_path / "z").exists()


def test_held_out_names_and_images_never_reach_the_trainer_in_any_fold(tmp_path, monkeypatch):
    from hirobust.app import finetune as pipeline
    from hirobust.app.schema import DataConfig, FinetuneConfig, ModelConfig, TrainConfig
    from hirobust.app.zeroshot import ZeroShotConfig, folds, seen_of
    from hirobust.train import Trainer

    seen: dict = {}

    def fit(self, method, data, run_dir, **kw):
        seen["classes"], seen["labels"] = list(data.classnames), data.labels.clone()
        seen["nodes"] = [n for lvl in range(method.trees[0].L + 1) for n in method.trees[0].tree.nodes(lvl)]
        seen["pooled"] = method.pooled.shape[0]
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", fit)
    cfg = ZeroShotConfig(dataset="fashion-mnist", tree="season")
    held = folds(cfg)
    assert len(held) == 3
    for fold in held:
        keep = seen_of(cfg, fold)
        ft = FinetuneConfig(out=str(tmp_path / "ft"), device="cpu", method="hiro",
                            model=ModelConfig(name="hirobust-fmnist-vit", pretrained="random"),
                            data=DataConfig(dataset="fashion-mnist", tree="season", train_classes=keep),
                            train=TrainConfig(batch_size=8))
        with pytest.raises(KeyboardInterrupt):
            pipeline.finetune(ft, progress=False)
        assert seen["classes"] == keep and not set(fold) & set(seen["nodes"])
        assert set(seen["labels"].tolist()) == set(range(len(keep)))
        assert seen["pooled"] == len(set(seen["nodes"]))  # only the seen leaves' (and their ancestors') prompts


# ---------------------------------------------------------------------- readouts
def test_pretrained_wt_rebuild_gives_the_pretrained_text_embeddings_exactly(tiny_clip, synth):
    from hirobust.diagnose import ReadoutHead, text_tangents
    from hirobust.models.zeroshot import text_projection_of

    train, _, forest = synth
    m, clip = _hiro(tiny_clip, forest, train.templates)
    _train(m, train)
    head = m.model.head()
    proj0 = text_projection_of(tiny_clip.model)
    assert not torch.allclose(text_projection_of(clip.model), proj0)  # W_T did move
    rebuilt = ReadoutHead(head, "pretrained_wt", proj0)
    # independently, through open_clip: the pretrained model's projected text features averaged over templates
    tree, tpl = forest[0], train.templates
    names = [n for lvl in range(tree.num_levels) for n in tree.nodes(lvl)]
    with torch.no_grad():
        feats = tiny_clip.model.encode_text(tiny_clip.tokenizer([t.format(n) for n in names for t in tpl])).float()
    pretrained = feats.view(len(names), len(tpl), -1).mean(1)
    assert torch.allclose(F.normalize(rebuilt.w, dim=-1), F.normalize(pretrained, dim=-1), atol=1e-5)
    scale = m.hyp.log_alpha_txt.exp().detach()  # the same α_T: only W_T differs from the trained head
    assert torch.allclose(rebuilt.w / scale, text_tangents(head, proj0) / scale, atol=1e-6)
    assert torch.allclose(text_tangents(head), m._text_base().detach(), atol=1e-6)


def test_readouts_keep_or_change_what_they_say(tiny_clip, synth):
    from hirobust.diagnose import readout_classifier

    train, test, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates)
    _train(m, train)
    clf = m.model.eval()
    x, _ = next(test.batches(16))
    with torch.no_grad():
        f = clf.image_features(x)
        cos = F.normalize(f, dim=-1) @ F.normalize(m._text_base(), dim=-1).t()
        angle = readout_classifier(clf, "angle")(x)
        level = readout_classifier(clf, "level_depth")(x)
    sizes = clf.head().sizes
    for a, b in zip(angle, cos.split(sizes, dim=-1)):
        assert torch.equal(a.argmax(-1), b.argmax(-1))
    # equal text depth within a level: the distance readout ranks classes by angle, as the angle readout does
    for a, b in zip(level, angle):
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.9
    x.requires_grad_(True)
    readout_classifier(clf, "angle")(x)[0].sum().backward()  # attacks differentiate through the image side
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---------------------------------------------------------------------- zero-shot-safe designs
def test_level_depth_puts_every_node_of_a_level_at_one_depth_and_round_trips(tmp_path, tiny_clip, synth):

    train, test, forest = synth
    m, clip = _hiro(tiny_clip, forest, train.templates, text_depth="level")
    _train(m, train)
    w = m._text_base().detach()
    for lvl in range(forest[0].num_levels):
        n = w[m.node_levels == lvl].norm(dim=-1)
        assert torch.allclose(n, n[0].expand_as(n), rtol=1e-5)
    assert _round_trips(tmp_path, m, clip, forest, test)


def test_text_anchor_and_fixed_tau(tiny_clip, synth):
    train, _, forest = synth
    m, _ = _hiro(tiny_clip, forest, train.templates, text_anchor=1.0, learn_tau=False)
    assert float(m.anchor_penalty()) == 0.0
    tau0 = float(m.hyp.tau)
    _train(m, train)
    assert float(m.anchor_penalty()) > 0 and float(m.hyp.tau) == pytest.approx(tau0)
    x, y = next(train.batches(24))
    out = m(x, y, generator=torch.Generator().manual_seed(0))
    assert "text_anchor" in out and float(out["text_anchor"]) > 0
    # its gradient pulls W_T straight back to the pretrained value: 2 (W − W⁰) / ‖W⁰‖²
    proj, w0 = m._projection_params()[0], m._anchor[0]
    proj.grad = None
    m.anchor_penalty().backward()
    assert torch.allclose(proj.grad, 2 * (proj.detach() - w0) / (w0 ** 2).sum(), rtol=1e-4, atol=1e-8)


# ---------------------------------------------------------------------- statistics
def test_fold_bootstrap_matches_a_direct_resampling():
    from hirobust.stats import fold_bootstrap, non_inferiority

    rng = np.random.default_rng(1)
    groups = [(rng.random((3, n)) < p).astype(np.int8) - (rng.random((3, n)) < 0.5).astype(np.int8)
              for n, p in ((300, 0.5), (200, 0.6), (250, 0.45))]
    d = fold_bootstrap(groups, n_boot=4000, seed=0)
    assert d["value"] == pytest.approx(np.mean([g.mean() for g in groups]))
    # direct: resample folds, then seeds and images by index
    boots = []
    for _ in range(2000):
        fs = rng.integers(0, 3, 3)
        vals = []
        for f in fs:
            g = groups[f]
            vals.append(g[rng.integers(0, 3, 3)][:, rng.integers(0, g.shape[1], g.shape[1])].mean())
        boots.append(np.mean(vals))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    assert d["ci95"][0] == pytest.approx(lo, abs=0.012) and d["ci95"][1] == pytest.approx(hi, abs=0.012)
    assert d["ci90"][0] > d["ci95"][0] and d["ci90"][1] < d["ci95"][1]
    assert non_inferiority({"ci90": [-0.005, 0.02]}, 0.01) == "non-inferior"
    assert non_inferiority({"ci90": [-0.05, -0.02]}, 0.01) == "inferior"
    assert non_inferiority({"ci90": [-0.02, 0.02]}, 0.01) == "inconclusive"
    assert "borderline" in non_inferiority({"ci90": [-0.0099, 0.02], "mc_se_ci90": [0.001, 0.001]}, 0.01)


def test_image_anchor_is_zero_at_the_start_without_attack_and_needs_the_reference(tiny_clip, synth):
    from hirobust.methods import FrozenReference
    from hirobust.methods.hiro import HiRo

    train, _, forest = synth
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    clf = build_cosine_classifier(clip, forest, train.templates)
    cfg = {"eps": 0.0, "text_eps": 0.0, "image_anchor": 1.0}
    with pytest.raises(ConfigError, match="reference"):
        build_method("hiro", clf, forest, cfg, clip=clip)
    assert HiRo.wants_reference(HiRo.Config(image_anchor=1.0)) and not HiRo.wants_reference(HiRo.Config())
    m = build_method("hiro", clf, forest, cfg, reference=FrozenReference(clf), clip=clip)
    x, y = next(train.batches(24))
    out = m(x, y)
    assert float(out["image_anchor"]) == pytest.approx(0.0, abs=1e-10)  # f_θ = f_orig before any step
    _train(m, train)
    out = m(x, y)
    assert float(out["image_anchor"]) > 0


def test_centering_removes_each_modality_mean_and_round_trips(tmp_path, tiny_clip, synth):

    train, test, forest = synth
    m, clip = _hiro(tiny_clip, forest, train.templates, center=True)
    x, y = next(train.batches(24, shuffle=True, generator=torch.Generator().manual_seed(0)))
    m.prepare(x, y)
    with torch.no_grad():
        f = m.model.image_features(x).float()
        assert torch.allclose(m.hyp.img_center, f.mean(0))
        n = len(forest[0].leaves)
        assert torch.allclose(m.hyp.txt_center, m.pooled[:n].mean(0))
        assert torch.allclose(m._text_base()[:n].mean(0), torch.zeros(m._text_base().shape[1]), atol=1e-5)
    _train(m, train)
    state = dict(m.trainable_state())
    assert "img_center" in state
    assert _round_trips(tmp_path, m, clip, forest, test)


@pytest.mark.parametrize("mode", ["marginal", "poe"])
def test_superclass_readout_through_the_tree(tmp_path, tiny_clip, synth, mode):
    from hirobust.models.heads import membership, superclass_logits

    train, test, forest = synth
    tree = forest[0]
    m, clip = _hiro(tiny_clip, forest, train.templates, superclass_readout=mode)
    _train(m, train, steps=2)
    x, _ = next(test.batches(8))
    clf = m.model.eval()
    with torch.no_grad():
        out = clf(x)
        leaf = out[0]
        for lvl in range(1, tree.num_levels):
            p_leaf = leaf.softmax(-1)
            summed = torch.stack([p_leaf[:, tree.ancestor_index(lvl) == j].sum(-1) for j in range(tree.num_nodes(lvl))],
                                 -1)
            if mode == "marginal":  # a node's probability is the sum of its leaves'
                assert torch.allclose(out[lvl].softmax(-1), summed, atol=1e-5)
            else:
                direct = m.hyp.logits(m.hyp.image(clf.image_features(x)), clf.head().level_text(lvl))
                assert torch.allclose(out[lvl], superclass_logits(direct, leaf, membership(tree, lvl), mode), atol=1e-5)
    assert _round_trips(tmp_path, m, clip, forest, test)
