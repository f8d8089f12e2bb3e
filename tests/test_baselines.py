"""PMG-AFT, FARE, TGA-ZSR and TeCoA: each loss against its formula, computed here from the open_clip model
directly (not through the methods' helpers), with the attack replaced by a fixed perturbation."""

import copy

import pytest
import torch
import torch.nn.functional as F

from hirobust.methods import FrozenReference, build_method
from hirobust.models.zeroshot import build_cosine_classifier

DELTA = 3 / 255


def _setup(tiny_clip, synth, name, options=None, monkeypatch=None):
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    train, _, forest = synth
    clf = build_cosine_classifier(clip, forest, train.templates)
    ref = FrozenReference(clf)
    m = build_method(name, clf, forest, options or {}, reference=ref, clip=clip)
    if monkeypatch is not None:  # a fixed, known "adversarial" image: x + DELTA * sign pattern
        # every method's training attack runs through its ThreatModel, which calls the one PGD loop
        monkeypatch.setattr("hirobust.attacks.threat.pgd", lambda fn, x, *a, **k: (x + DELTA * _pattern(x)).clamp(0, 1))
    return m, clip, ref


def _pattern(x):
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1


def _encode(model, clip, x):
    mean = torch.tensor(clip.mean).view(1, 3, 1, 1)
    std = torch.tensor(clip.std).view(1, 3, 1, 1)
    return model.encode_image((x - mean) / std)


def _leaf_text(clip, names, templates):
    with torch.no_grad():
        feats = []
        for n in names:
            t = clip.model.encode_text(clip.tokenizer([tp.format(n) for tp in templates]))
            feats.append(F.normalize(F.normalize(t, dim=-1).mean(0), dim=-1))
        return torch.stack(feats)


def _batch(synth, n=16):
    return next(synth[0].batches(n, shuffle=True, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("options,scale,reduction", [({}, 1.0, "sum"),
                                                     ({"logit_scale": None, "kl_reduction": "batchmean"}, None,
                                                      "batchmean")])
def test_pmg_loss(tiny_clip, synth, monkeypatch, options, scale, reduction):
    m, clip, ref = _setup(tiny_clip, synth, "pmg", options, monkeypatch)
    original = copy.deepcopy(clip.model)
    x, y = _batch(synth)
    out = m(x, y)
    x_adv = (x + DELTA * _pattern(x)).clamp(0, 1)
    t = _leaf_text(clip, synth[0].classnames, synth[0].templates)
    s = float(clip.model.logit_scale.detach().exp()) if scale is None else scale
    z = lambda model, xx: s * F.normalize(_encode(model, clip, xx), dim=-1) @ t.t()  # noqa: E731
    z_adv, z_clean = z(clip.model, x_adv), z(clip.model, x)
    with torch.no_grad():
        z_orig = z(original, x_adv)
    def kl(p_logits, q_logits):  # KL(P ‖ Q) per sample
        p = F.softmax(p_logits, -1)
        return (p * (F.log_softmax(p_logits, -1) - F.log_softmax(q_logits, -1))).sum(-1)
    red = (lambda v: v.sum()) if reduction == "sum" else (lambda v: v.mean())
    expected = F.cross_entropy(z_adv, y) + red(kl(z_clean, z_adv)) + red(kl(z_orig, z_adv))
    assert torch.allclose(out["loss"], expected, rtol=1e-5, atol=1e-6)


def test_fare_loss_and_reference_cache(tiny_clip, synth, monkeypatch):
    m, clip, ref = _setup(tiny_clip, synth, "fare", {}, monkeypatch)
    original = copy.deepcopy(clip.model)
    x, y = _batch(synth)
    x_adv = (x + DELTA * _pattern(x)).clamp(0, 1)
    with torch.no_grad():
        target = _encode(original, clip, x)
    expected = ((_encode(clip.model, clip, x_adv) - target) ** 2).sum(1).mean()
    assert torch.allclose(m(x, y)["loss"], expected, rtol=1e-5)
    # with the per-sample cache: the same loss, read by index
    m.reference_cache.compute(m.reference_outputs(), synth[0], "cpu", m.image_size)  # as the trainer does
    idx = torch.arange(16)
    xi, yi = synth[0].images[idx].float() / 255, synth[0].labels[idx]
    with torch.no_grad():
        target_i = _encode(original, clip, xi)
    xi_adv = (xi + DELTA * _pattern(xi)).clamp(0, 1)
    expected_i = ((_encode(clip.model, clip, xi_adv) - target_i) ** 2).sum(1).mean()
    assert torch.allclose(m(xi, yi, index=idx)["loss"], expected_i, rtol=1e-5)


def test_tga_loss(tiny_clip, synth, monkeypatch):
    m, clip, ref = _setup(tiny_clip, synth, "tga", {}, monkeypatch)
    original = copy.deepcopy(clip.model)
    x, y = _batch(synth)
    x_adv = (x + DELTA * _pattern(x)).clamp(0, 1)
    t = _leaf_text(clip, synth[0].classnames, synth[0].templates)
    s = float(clip.model.logit_scale.detach().exp())

    def attention(model, xx):  # tokens after ln_post (captured by a hook), projected; the reference's recipe
        seen = {}
        h = model.visual.ln_post.register_forward_hook(lambda mod, i, o: seen.setdefault("t", o))
        _encode(model, clip, xx)
        h.remove()
        tok = seen["t"] @ model.visual.proj  # [B, 1 + T, D]
        tok = tok / tok.norm(dim=1, keepdim=True)  # along the token axis
        a = torch.einsum("btd,bd->bt", tok[:, 1:], t[y])
        a = (a - a.min(1, keepdim=True).values) / (a.max(1, keepdim=True).values - a.min(1, keepdim=True).values)
        g = int(a.shape[1] ** 0.5)
        return F.interpolate(a.view(-1, 1, g, g), size=xx.shape[-1], mode="bilinear").view(len(xx), -1)

    with torch.no_grad():
        a_orig = attention(original, x)
    logits = s * F.normalize(_encode(clip.model, clip, x_adv), dim=-1) @ t.t()
    expected = F.cross_entropy(logits, y) + 0.08 * (attention(clip.model, x_adv) - a_orig).norm(dim=1).mean() \
        + 0.05 * (attention(clip.model, x) - a_orig).norm(dim=1).mean()
    out = m(x, y)
    assert torch.allclose(out["loss"], expected, rtol=1e-4, atol=1e-6)
    assert out["attn_adv"] > 0


def test_tecoa_loss(tiny_clip, synth, monkeypatch):
    m, clip, _ = _setup(tiny_clip, synth, "tecoa", {}, monkeypatch)
    x, y = _batch(synth)
    x_adv = (x + DELTA * _pattern(x)).clamp(0, 1)
    t = _leaf_text(clip, synth[0].classnames, synth[0].templates)
    s = float(clip.model.logit_scale.detach().exp())
    expected = F.cross_entropy(s * F.normalize(_encode(clip.model, clip, x_adv), dim=-1) @ t.t(), y)
    assert torch.allclose(m(x, y)["loss"], expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["pmg", "fare", "tga"])
def test_frozen_reference_is_bit_identical_after_training(tmp_path, tiny_clip, synth, name):
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    m, clip, ref = _setup(tiny_clip, synth, name, {"eps": 4 / 255})
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    visual_before = {k: v.clone() for k, v in clip.model.visual.state_dict().items()}
    Trainer(TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.05)).fit(m, synth[0], tmp_path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in ref.state_dict().items())
    assert not ref.training and all(not p.requires_grad for p in ref.parameters())
    assert any(not torch.equal(visual_before[k], v) for k, v in clip.model.visual.state_dict().items())


def test_fare_momentum_of_signs_equals_plain_sign_steps():
    from hirobust.attacks import pgd

    torch.manual_seed(0)
    lin = torch.nn.Linear(12, 4)
    x = torch.rand(8, 12)
    fn = lambda z: lin(z).pow(2).sum(1)  # noqa: E731
    a = pgd(fn, x, 4 / 255, 10, 1 / 255, momentum=0.9, momentum_mode="sign", generator=torch.Generator().manual_seed(1))
    b = pgd(fn, x, 4 / 255, 10, 1 / 255, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_reference_of_another_architecture_is_refused(tiny_clip, synth):
    from hirobust.models.clip import load_clip

    other = load_clip("hirobust-fmnist-vit")
    clf = build_cosine_classifier(copy.copy(tiny_clip), synth[2], synth[0].templates)
    other_clf = build_cosine_classifier(other, synth[2], synth[0].templates)
    with pytest.raises(ValueError, match="architecture differs"):
        FrozenReference(clf, other_clf)


def test_labels_needed(tmp_path, capsys):
    from hirobust.app.cli import main

    args = ["--quiet", "finetune", "--out", str(tmp_path / "r"), "model.name=hirobust-tiny", "model.pretrained=random",
            "data.dataset=synthetic-unlabelled", "train.epochs=1", "train.batch_size=32"]
    assert main(args + ["--method", "pmg"]) == 2
    assert "needs labels" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(args + ["--method", "fare"]) == 0  # FARE needs none
