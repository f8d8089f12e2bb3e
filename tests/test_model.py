import pytest
import torch
import torch.nn.functional as F

from hirobust.models.clip import export_open_clip, load_clip
from hirobust.models.zeroshot import encode_prompts


def test_normalisation_is_inside_the_model(tiny_classifier):
    clf, clip = tiny_classifier
    x = torch.rand(4, 3, 16, 16)
    mean = torch.tensor(clip.mean).view(1, 3, 1, 1)
    std = torch.tensor(clip.std).view(1, 3, 1, 1)
    expected = F.normalize(clip.model.encode_image((x - mean) / std), dim=-1)
    head = clf.head()
    logits = clf(x)
    for level, z in enumerate(logits):
        assert torch.allclose(z, head.logit_scale * expected @ head.level_text(level).t(), atol=1e-5)
    # raw pixels are not what the tower sees: feeding [0, 1] images straight in gives other features
    assert not torch.allclose(clip.model.encode_image(x), clf.image_features(x))


def test_text_features_are_cached_not_recomputed(tiny_classifier, monkeypatch):
    clf, clip = tiny_classifier

    def boom(*a, **k):
        raise AssertionError("text encoder called during a forward pass")

    monkeypatch.setattr(clip.model, "encode_text", boom)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = clf(x)
    sum(z.sum() for z in out).backward()
    assert x.grad is not None


def test_one_head_per_tree_and_level(tiny_classifier, synth):
    clf, clip = tiny_classifier
    tree = synth[2][0]
    out = clf(torch.rand(3, 3, 16, 16))
    assert [z.shape for z in out] == [torch.Size([3, tree.num_nodes(lvl)]) for lvl in range(tree.num_levels)]
    names = tree.nodes(1)
    expected = encode_prompts(clip, names, synth[0].templates)
    assert torch.allclose(clf.head().level_text(1), expected, atol=1e-6)


def test_template_average_of_pre_projection_equals_projected_mean(tiny_clip):
    from hirobust.models.zeroshot import apply_text_projection, text_projection_of

    names, templates = ["item 0", "group 1"], ["a photo of a {}.", "an image of the {}."]
    pooled = encode_prompts(tiny_clip, names, templates, pre_projection=True)
    proj = apply_text_projection(text_projection_of(tiny_clip.model), pooled)
    tokens = tiny_clip.tokenizer([t.format(n) for n in names for t in templates])
    with torch.no_grad():
        direct = tiny_clip.model.encode_text(tokens).view(2, 2, -1).mean(1)
    assert torch.allclose(proj, direct, atol=1e-5)


def test_text_features_come_from_one_pass_kept_by_content_and_recomputed_when_the_weights_change(tiny_clip,
                                                                                                   monkeypatch):
    from hirobust.models import text_cache

    names, templates = ["item 0", "group 1", "item 3"], ["a photo of a {}.", "an image of the {}."]
    tokens = tiny_clip.tokenizer([t.format(n) for n in names for t in templates])
    with torch.no_grad():  # CLIP's zero-shot weights as open_clip computes them
        direct = F.normalize(F.normalize(tiny_clip.model.encode_text(tokens), dim=-1).view(3, 2, -1).mean(1), dim=-1)
    real, calls = tiny_clip.model.encode_text, []
    monkeypatch.setattr(tiny_clip.model, "encode_text", lambda *a, **k: calls.append(1) or real(*a, **k))
    text_cache._MEMORY.clear()
    first = encode_prompts(tiny_clip, names, templates)
    assert torch.allclose(first, direct, atol=1e-5) and len(calls) == 1  # one batch, one pass
    encode_prompts(tiny_clip, names, templates, pre_projection=True)  # the other form: from the same pass
    text_cache._MEMORY.clear()
    assert torch.equal(encode_prompts(tiny_clip, names, templates), first) and len(calls) == 1  # from disk
    w = tiny_clip.model.token_embedding.weight
    kept = w.detach().clone()
    try:
        with torch.no_grad():
            w.mul_(1.5)  # a fine-tuned text tower is another key
        again = encode_prompts(tiny_clip, names, templates)
        assert len(calls) == 2 and not torch.allclose(again, first, atol=1e-4)
    finally:
        with torch.no_grad():
            w.copy_(kept)


def test_unknown_model_and_missing_checkpoint():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_clip("nope")
    with pytest.raises(ValueError, match="does not exist"):
        load_clip("hirobust-tiny", "/no/such/file.safetensors")


def test_checkpoint_of_another_architecture_is_refused(tmp_path, tiny_clip):
    export_open_clip(tiny_clip.model, "hirobust-tiny", tmp_path)
    with pytest.raises(ValueError, match="does not match model 'hirobust-fmnist-vit'"):
        load_clip("hirobust-fmnist-vit", str(tmp_path / "open_clip_model.safetensors"))


def test_export_loads_unchanged_in_open_clip(tmp_path, tiny_clip):
    import open_clip

    export_open_clip(tiny_clip.model, "hirobust-tiny", tmp_path, tiny_clip.mean, tiny_clip.std)
    weights = str(tmp_path / "open_clip_model.safetensors")
    m, _, _ = open_clip.create_model_and_transforms("hirobust-tiny", pretrained=weights)
    for (k, a), (_, b) in zip(tiny_clip.model.state_dict().items(), m.state_dict().items()):
        assert torch.equal(a, b), k
    m2 = open_clip.create_model("local-dir:" + str(tmp_path))
    assert torch.equal(m2.visual.proj, tiny_clip.model.visual.proj)


def test_random_weights_are_one_model_everywhere_and_leave_the_callers_random_state_alone():
    """model.pretrained=random: the same weights in every process and rank (a random model evaluated under
    torchrun is one model on every shard); the caller's random stream is not moved; another seed, other weights."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = load_clip("hirobust-tiny", None).model.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(7)  # another process, another history of draws
    b = load_clip("hirobust-tiny", None).model.state_dict()
    c = load_clip("hirobust-tiny", None, seed=1).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
