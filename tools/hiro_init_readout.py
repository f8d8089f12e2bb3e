"""How HiRo's head reads seen and unseen leaves at initialisation, before any fine-tuning step (docs/hiro.md).

    python tools/hiro_init_readout.py PRETRAINED.safetensors [--held-out dress,coat,sneaker] [--options k=v ...]

Builds HiRo on the seen leaves of the `season` tree exactly as `hirobust finetune` does, runs its data-dependent
initialisation on the first training batch (seed 0), then reads the whole `val` split (every leaf, the held-out
ones included) with that head: clean accuracy per level, seen and unseen leaves apart, beside the pretrained
cosine classifier's.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    from hirobust.data import dataset_forest, get_dataset
    from hirobust.evaluate import level_labels, predict
    from hirobust.methods import build_method
    from hirobust.models.clip import load_clip
    from hirobust.models.heads import TextSpec
    from hirobust.models.hyperbolic import poincare_classifier, pooled_text
    from hirobust.models.zeroshot import build_cosine_classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrained")
    ap.add_argument("--held-out", default="dress,coat,sneaker")
    ap.add_argument("--options", nargs="*", default=["init_depth=1.0", "image_levels=true"])
    a = ap.parse_args()
    opts = {"eps": 10 / 255}
    for kv in a.options:
        k, v = kv.split("=")
        opts[k] = {"true": True, "false": False}.get(v.lower(), v)
        if isinstance(opts[k], str):
            opts[k] = float(v)
    val = get_dataset("fashion-mnist", "val")
    full = dataset_forest(val, trees=["season"])
    tree = full[0]
    held = a.held_out.split(",")
    seen = [c for c in tree.leaves if c not in held]
    train = get_dataset("fashion-mnist", "train").restrict_classes(seen)
    forest = dataset_forest(train, trees=["season"])
    clip = load_clip("hirobust-fmnist-vit", a.pretrained)
    text = TextSpec(val.templates, val.prompt_names)
    cosine = build_cosine_classifier(clip, full, val.templates, prompt_names=val.prompt_names).eval()
    clf = build_cosine_classifier(clip, forest, train.templates, prompt_names=train.prompt_names)
    m = build_method("hiro", clf, forest, opts, clip=clip)
    x, y = next(train.batches(128, shuffle=True, generator=torch.Generator().manual_seed(0)))
    m.prepare(x, y)
    hiro = poincare_classifier(clip.model.visual, clip.mean, clip.std, clip.image_size, pooled_text(clip, full, text),
                               m.hyp, text, full).eval()
    truth = level_labels(tree, val.labels)
    is_seen = torch.tensor([tree.leaves[int(c)] in seen for c in val.labels])
    for name, model in (("pretrained cosine", cosine), ("HiRo at init", hiro)):
        with torch.no_grad():
            p, _ = predict(model, val, None, 1000, "cpu", progress=False)
        ok = p == truth
        row = {g: [round(100 * float(ok[mask, lvl].float().mean()), 1) for lvl in range(tree.num_levels)]
               for g, mask in (("seen", is_seen), ("unseen", ~is_seen))}
        print(f"{name}: clean accuracy per level, seen {row['seen']}, unseen {row['unseen']} (val, n = {len(val)})")


if __name__ == "__main__":
    main()
