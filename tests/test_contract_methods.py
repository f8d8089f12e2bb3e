"""The contract every registered method keeps (``hirobust.methods.METHODS``: a new method is covered by being
registered): it declares the trainer's hooks and its passes; one training step gives a finite loss whose
gradients reach every parameter it declares trainable and nothing else changes; its run directory
(:mod:`hirobust.models.rundir`) rebuilds a classifier with the same logits; the exported ``model/`` loads in
open_clip unchanged."""

import copy

import pytest
import torch

from hirobust.methods import METHODS, FrozenReference, Method, StepPasses, build_method
from hirobust.models.zeroshot import build_cosine_classifier

NAMES = list(METHODS)


def _all_tensors(m, clip) -> dict:
    """Every parameter and buffer the step could touch: the method's (the frozen reference included) and the
    open_clip model's (its text tower, which only some methods train)."""
    out = {f"method.{k}": v for k, v in m.state_dict(keep_vars=True).items()}
    out.update({f"clip.{k}": v for k, v in clip.model.state_dict(keep_vars=True).items()})
    return out


@pytest.fixture(scope="module", params=NAMES)
def stepped(request, tiny_clip, synth):
    """One method after one SGD step on a seeded batch, as the trainer runs it, with what the step saw."""
    name = request.param
    train, _, forest = synth
    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    clf = build_cosine_classifier(clip, forest, train.templates, prompt_names=train.prompt_names)
    reference = FrozenReference(clf) if METHODS[name].needs_reference else None
    m = build_method(name, clf, forest, {}, reference=reference, clip=clip)
    x, y = next(train.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    m.reference_cache.compute(m.reference_outputs(), train, "cpu", m.image_size)  # the trainer's hooks, in order
    if m.needs_first_batch:
        m.prepare(x, y)
    m.train()
    trainable = dict(m.trainable_parameters())
    ids = {id(p) for p in trainable.values()}
    frozen = {k: v.detach().clone() for k, v in _all_tensors(m, clip).items() if id(v) not in ids}
    before = {k: p.detach().clone() for k, p in trainable.items()}
    out = m(x, y, generator=torch.Generator().manual_seed(1), index=torch.arange(8))
    out["loss"].backward()
    grads = {k: None if p.grad is None else p.grad.clone() for k, p in trainable.items()}
    stray = [k for k, v in _all_tensors(m, clip).items()
             if id(v) not in ids and isinstance(v, torch.nn.Parameter) and v.grad is not None and v.grad.any()]
    torch.optim.SGD(trainable.values(), lr=1e-2).step()
    m.after_step()
    m.zero_grad(set_to_none=True)
    m.eval()
    return {"name": name, "method": m, "clip": clip, "forest": forest, "train": train, "x": x, "out": out,
            "trainable": trainable, "before": before, "grads": grads, "stray": stray, "frozen": frozen}


def test_declares_the_trainers_hooks_and_its_passes(stepped):
    m = stepped["method"]
    assert isinstance(m, Method) and type(m) is METHODS[stepped["name"]] and m.name == stepped["name"]
    assert isinstance(m.needs_labels, bool) and isinstance(m.needs_reference, bool)
    assert isinstance(m.needs_first_batch, bool) and isinstance(m.reference_outputs(), dict)
    for cached in (False, True):
        p = m.passes(cached=cached)
        assert isinstance(p, StepPasses) and all(isinstance(v, int) and v >= 0 for v in p)
        assert p.input_grad >= m.cfg.steps and p.forward_backward >= 1
    assert m.passes(cached=True).forward <= m.passes().forward
    state = m.head_state()
    assert state["head"] == m.model.head().kind


def test_the_loss_is_finite_and_reaches_every_trainable_parameter(stepped):
    out = stepped["out"]
    assert out["loss"].dim() == 0 and bool(torch.isfinite(out["loss"]))
    assert all(bool(torch.isfinite(v).all()) for v in out.values() if torch.is_tensor(v))
    assert stepped["trainable"], "a method must declare what it trains"
    for k, g in stepped["grads"].items():
        assert g is not None, f"no gradient reaches {k}"
        assert bool(torch.isfinite(g).all()), k
    assert any(not torch.equal(p, stepped["before"][k]) for k, p in stepped["trainable"].items())


def test_nothing_frozen_gets_a_gradient_or_changes(stepped):
    assert stepped["stray"] == []
    now = _all_tensors(stepped["method"], stepped["clip"])
    for k, v in stepped["frozen"].items():
        assert torch.equal(now[k], v), f"{k} is not declared trainable but changed"


def test_the_run_directory_rebuilds_the_same_classifier(stepped, tmp_path):
    from hirobust.models.rundir import load_classifier, read_run_meta, save_run

    m, train = stepped["method"], stepped["train"]
    save_run(tmp_path, m, stepped["clip"], method_name=stepped["name"], model_name="hirobust-tiny", source=None)
    assert read_run_meta(tmp_path)["head"]["head"] == m.model.head().kind
    rebuilt = load_classifier(str(tmp_path), stepped["forest"], train.templates, train.prompt_names).eval()
    with torch.no_grad():
        for tree in stepped["forest"]:
            for a, b in zip(rebuilt(stepped["x"], tree=tree.name), m.model(stepped["x"], tree=tree.name)):
                assert torch.equal(a, b)


def test_the_exported_model_loads_in_open_clip(stepped, tmp_path):
    import open_clip

    from hirobust.models.rundir import WEIGHTS, save_run

    clip = stepped["clip"]
    save_run(tmp_path, stepped["method"], clip, method_name=stepped["name"], model_name="hirobust-tiny", source=None)
    loaded, _, _ = open_clip.create_model_and_transforms("hirobust-tiny", pretrained=str(tmp_path / WEIGHTS))
    ours, theirs = clip.model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
