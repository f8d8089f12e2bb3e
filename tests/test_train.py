import copy
import dataclasses
import os
import shutil

import pytest
import torch

from hirobust.methods import Trainable, build_method
from hirobust.models.zeroshot import build_cosine_classifier
from hirobust.settings import TrainConfig
from hirobust.train import Interrupted, Trainer


def _method(tiny_clip, synth, name="tecoa", options=None):
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    clf = build_cosine_classifier(clip, synth[2], synth[0].templates)
    return build_method(name, clf, synth[2], options or {"eps": 4 / 255})


def _weights(method):
    return {n: p.detach().clone() for n, p in method.trainable_parameters()}


def test_resume_gives_the_same_final_weights(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, ckpt_every=3, log_every=2)
    full = _method(tiny_clip, synth)
    Trainer(cfg).fit(full, synth[0], tmp_path / "a", progress=False)

    part = _method(tiny_clip, synth)

    def stop(step, _):
        if step == 5:  # the last checkpoint is at step 3: steps 4-5 are redone after resume
            raise Interrupted

    with pytest.raises(Interrupted):
        Trainer(cfg).fit(part, synth[0], tmp_path / "b", progress=False, callback=stop)
    resumed = _method(tiny_clip, synth)  # a fresh process would rebuild the method from scratch
    summary = Trainer(cfg).fit(resumed, synth[0], tmp_path / "b", resume=True, progress=False)
    assert summary["steps"] == 2 * (len(synth[0]) // 16)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    start = _weights(_method(tiny_clip, synth))
    assert any(not torch.equal(a[k], start[k]) for k in a)  # training changed the weights


def _scaled(method):
    """The method with a per-parameter lr scale: biases 3x, the rest of the first block 0.5x (five groups)."""
    method.lr_scale = lambda name: 3.0 if name.endswith("bias") else 0.5 if ".0." in name else 1.0
    return method


def test_resume_is_exact_with_lr_scale_groups(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=3e-3, weight_decay=0.1, ckpt_every=2)
    full = _scaled(_method(tiny_clip, synth))
    Trainer(cfg).fit(full, synth[0], tmp_path / "a", progress=False)
    plain = _method(tiny_clip, synth)
    Trainer(cfg).fit(plain, synth[0], tmp_path / "plain", progress=False)

    def stop(step, _):
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        Trainer(cfg).fit(_scaled(_method(tiny_clip, synth)), synth[0], tmp_path / "b", progress=False, callback=stop)
    resumed = _scaled(_method(tiny_clip, synth))
    Trainer(cfg).fit(resumed, synth[0], tmp_path / "b", resume=True, progress=False)
    a, b, p = _weights(full), _weights(resumed), _weights(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], p[k]) for k in a)  # the scales changed the training


def test_optimizer_groups_by_decay_and_lr_scale(tiny_clip, synth):
    trainer = Trainer(TrainConfig(weight_decay=0.1))
    m = _scaled(_method(tiny_clip, synth))
    named = list(m.trainable_parameters())
    groups = trainer.optimizer(named, m).param_groups
    assert [(g["weight_decay"], g["lr_scale"]) for g in groups][:2] == [(0.1, 1.0), (0.0, 1.0)]
    assert len({(g["weight_decay"], g["lr_scale"]) for g in groups}) == len(groups) == 5
    where = {id(p): (g["weight_decay"], g["lr_scale"]) for g in groups for p in g["params"]}
    for n, p in named:
        assert where[id(p)] == (0.1 if p.dim() >= 2 else 0.0, m.lr_scale(n)), n
    for g in groups:  # the parameters keep the method's order inside a group
        order = [i for i, (_, p) in enumerate(named) if any(p is q for q in g["params"])]
        assert order == sorted(order)
    # unnamed parameters (the benchmark) or a task with the default hook (pretraining): today's two groups
    for opt in (trainer.optimizer([p for _, p in named]), trainer.optimizer(named, Trainable())):
        assert [(g["weight_decay"], g["lr_scale"], len(g["params"])) for g in opt.param_groups] == [
            (0.1, 1.0, sum(p.dim() >= 2 for _, p in named)), (0.0, 1.0, sum(p.dim() < 2 for _, p in named))]
    assert _method(tiny_clip, synth).lr_scale("model.visual.proj") == 1.0  # the base class's declared hook
    m.lr_scale = lambda name: 0.0
    with pytest.raises(ValueError, match="must be positive"):
        trainer.optimizer(named, m)


def test_resume_refuses_another_run(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.01)
    Trainer(cfg).fit(_method(tiny_clip, synth), synth[0], tmp_path, progress=False)
    other = TrainConfig(epochs=1, batch_size=16, lr=0.02)
    with pytest.raises(ValueError, match="belongs to another run"):
        Trainer(other).fit(_method(tiny_clip, synth), synth[0], tmp_path, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(cfg).fit(_method(tiny_clip, synth), synth[0], tmp_path / "empty", resume=True, progress=False)


def test_nan_loss_stops_before_saving(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=1e3, log_every=1)
    cfg.lr = 1e30  # past the config's range check (lr <= 1e3): a library user's own Trainer diverging
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        Trainer(cfg).fit(_method(tiny_clip, synth), synth[0], tmp_path, progress=False)
    assert not (tmp_path / "checkpoint").exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("checkpoint.*"))


def test_training_reduces_the_adversarial_loss(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=4, batch_size=32, optimizer="adamw", lr=3e-3, log_every=1)
    s = Trainer(cfg).fit(_method(tiny_clip, synth), synth[0], tmp_path, progress=False)
    h = [r["loss"] for r in s["history"]]
    assert sum(h[-4:]) / 4 < sum(h[:4]) / 4


def test_bad_train_config():
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ValueError, match="larger than the"):
        Trainer(TrainConfig(batch_size=10**6)).plan(100)


NO_CXX = not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++"))


@pytest.mark.slow
@pytest.mark.skipif(NO_CXX, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_training_follows_eager_and_keeps_checkpoint_names(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, log_every=1)
    eager, compiled = _method(tiny_clip, synth), _method(tiny_clip, synth)
    a = Trainer(cfg).fit(eager, synth[0], tmp_path / "eager", progress=False)
    b = Trainer(dataclasses.replace(cfg, compile=True)).fit(compiled, synth[0], tmp_path / "compiled", progress=False)
    assert hasattr(compiled.model.visual, "_orig_mod")  # it did compile
    for x, y in zip(a["history"], b["history"]):  # the same losses up to the fused kernels' float rounding
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-3, abs=1e-4)
    wa, wb = _weights(eager), _weights(compiled)
    assert wa.keys() == wb.keys()  # checkpoints and exports keep the eager parameter names
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=1e-3, atol=1e-4), k
    from safetensors import safe_open

    names = [safe_open(str(p / "checkpoint" / "trainable.safetensors"), "pt").keys()
             for p in (tmp_path / "eager", tmp_path / "compiled")]
    assert sorted(names[0]) == sorted(names[1])
