"""``hirobust bench``: the report's structure and arithmetic, and the time projections' pass counts."""

import json
import math

import pytest

from hirobust.app.projection import IMAGENET_TRAIN_IMAGES, eval_passes, paper_eval_config, project


def test_bench_cli_reports_rates_fractions_and_projection(tmp_path):
    from hirobust.app.cli import main

    out = tmp_path / "b"
    rc = main(["bench", "model=hirobust-tiny", "device=cpu", "batch_size=8", "num_classes=8", "num_levels=3",
               "steps=1", "warmup=0", "eval_steps=2", "methods=[tecoa,hiro]", "project=true", "devices=[1,4]",
               f"out={out}"])
    assert rc == 0
    res = json.loads((out / "report.json").read_text())
    assert all(math.isfinite(v) and v > 0 for v in res["bare"].values())
    for m in res["methods"].values():
        p, bare = m["passes"], m["bare"]
        # the ceiling is the rate the method's passes reach at the bare per-image cost (timed in the same rounds)
        ceiling = 1 / (p["input_grad"] / bare["input_grad_img_s"] + p["forward_backward"] /
                       bare["forward_backward_img_s"] + p["forward"] / bare["forward_img_s"])
        assert m["ceiling_img_s"] == pytest.approx(ceiling)
        assert m["fraction_of_ceiling"] == pytest.approx(m["train_img_s"] / ceiling)
        assert m["peak_memory_gib"] is None  # CPU: no peak counter, reported as such rather than 0
    assert res["methods"]["tecoa"]["passes"] == {"input_grad": 2, "forward_backward": 1, "forward": 0}
    ref = res["reference_style"]
    assert ref["tecoa_speedup"] == pytest.approx(ref["tecoa_img_s"] / ref["train_img_s"])
    proj = res["projection"]
    for name, m in res["methods"].items():
        one = IMAGENET_TRAIN_IMAGES / m["train_img_s"] / 60
        assert proj["imagenet_epoch_minutes"][name]["1"] == pytest.approx(one)
        assert proj["imagenet_epoch_minutes"][name]["4"] == pytest.approx(one / 4)
    assert proj["eval_15_datasets_hours"]["4"] == pytest.approx(proj["eval_15_datasets_hours"]["1"] / 4)
    assert len(proj["eval_per_dataset"]) == 15
    md = (out / "report.md").read_text()
    assert "fraction of ceiling" in md and "ImageNet-1k epoch, hiro" in md


def test_eval_passes_counts_the_paper_protocol_by_hand():
    cfg = paper_eval_config()
    # CIFAR-10: 10,000 test images, tree nodes per level 10 / 6 / 2, every level attacked.
    # PGD-20 and CW-20: 3 levels x 1,000 images x 20 steps each; the 2x-steps check: 1,000 x 40.
    # AutoAttack, 500 images x 100 iterations x (APGD-CE + one APGD-T per target): 10 classes -> 9 targets,
    # 6 -> 5 targets, 2 classes -> APGD-CE alone.
    grad = 2 * 3 * 1000 * 20 + 1000 * 40 + 500 * 100 * (10 + 6 + 1)
    fwd = 10_000 + 2 * 1000 + 2 * 3 * 1000 + 500 + 3 * 2 * 500 + 1000
    assert eval_passes("cifar10", cfg) == (grad, fwd)
    # PCAM: levels 2 / 1 -> only the leaf level can be attacked, with APGD-CE alone (2 classes)
    grad = 2 * 1000 * 20 + 1000 * 40 + 500 * 100
    fwd = 32_768 + 2 * 1000 + 2 * 1000 + 500 + 2 * 500 + 1000
    assert eval_passes("pcam", cfg) == (grad, fwd)


def test_projection_scales_passes_by_bare_rates_and_measured_fraction():
    res = {"amp": "off", "bare": {"input_grad_img_s": 100.0, "forward_img_s": 300.0, "forward_backward_img_s": 80.0},
           "evaluation": {"fraction_of_ceiling": 0.5}, "methods": {"tecoa": {"train_img_s": 1000.0}}}
    p = project(res, [1, 2])
    grad, fwd = eval_passes("dtd", paper_eval_config())
    assert p["eval_per_dataset"]["dtd"]["minutes"] == pytest.approx((grad / 100 + fwd / 300) / 0.5 / 60)
    total = sum(v["minutes"] for v in p["eval_per_dataset"].values()) / 60
    assert p["eval_15_datasets_hours"] == pytest.approx({"1": total, "2": total / 2})
    assert p["imagenet_epoch_minutes"]["tecoa"]["1"] == pytest.approx(1_281_167 / 1000 / 60)


@pytest.mark.parametrize("change", [
    {},  # PGD and CW at every level, the 2x-steps check, a two-ε sweep at the leaf
    {"eps_sweep_levels": [0, -1], "attack_levels": [0, 2], "sweep_samples": None, "check_more_steps": False},
    {"attacks": ["pgd"], "attack_levels": [1], "eps_sweep_levels": [0]},  # a sweep level not attacked: no sweep
])
def test_eval_passes_are_the_passes_evaluate_model_runs(tiny_clip, change):
    """The projection's pass count is not a second copy of the evaluator to trust: the image tower's passes of
    real evaluate_model runs are counted and compared."""
    import torch

    from hirobust.app.projection import tree_eval_passes
    from hirobust.data import dataset_forest, make_synthetic
    from hirobust.evaluate import evaluate_model
    from hirobust.models.zeroshot import build_cosine_classifier
    from hirobust.settings import EvalConfig

    data = make_synthetic("test", n_per_class=6)
    forest = dataset_forest(data)
    clf = build_cosine_classifier(tiny_clip, forest, data.templates).eval()
    cfg = EvalConfig(**{"eps": 2 / 255, "steps": 3, "attacks": ["pgd", "cw"], "robust_samples": 20,
                        "clean_samples": 30, "check_more_steps": True, "eps_sweep": [1 / 255, 4 / 255],
                        "sweep_samples": 10, "batch_size": 16, **change})
    counts = {"grad": 0, "fwd": 0}

    def count(module, args, output):
        counts["grad" if torch.is_grad_enabled() else "fwd"] += args[0].shape[0]

    handle = clf.visual.register_forward_hook(count)
    try:
        evaluate_model(clf, data, forest[0], cfg, progress=False)
    finally:
        handle.remove()
    assert (counts["grad"], counts["fwd"]) == tree_eval_passes(forest[0], len(data), cfg)
