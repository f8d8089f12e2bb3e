import copy

import pytest
import torch

from hirobust.evaluate import evaluate_model
from hirobust.hierarchy import Hierarchy
from hirobust.metrics import hierarchical_metrics
from hirobust.settings import EvalConfig


@pytest.fixture(scope="module")
def trained(tiny_clip, synth):
    """A tiny classifier trained (clean, eps = 0) until it is well above chance on the synthetic data."""
    from hirobust.methods import build_method
    from hirobust.models.zeroshot import build_cosine_classifier
    from hirobust.settings import TrainConfig
    from hirobust.train import Trainer

    clip = copy.copy(tiny_clip)
    clip.model = copy.deepcopy(tiny_clip.model)
    train, test, forest = synth
    clf = build_cosine_classifier(clip, forest, train.templates)
    m = build_method("tecoa", clf, forest, {"eps": 0.0, "steps": 0})
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Trainer(TrainConfig(epochs=15, batch_size=16, optimizer="adamw", lr=3e-3)).fit(m, train, d, progress=False)
    return clf.eval(), test, forest[0]


def test_pgd_cw_and_autoattack(trained):
    clf, test, tree = trained
    cfg = EvalConfig(eps=4 / 255, steps=10, attacks=["pgd", "cw", "autoattack"], robust_samples=48,
                     batch_size=48, check_more_steps=True, autoattack_iters=20)
    out = evaluate_model(clf, test, tree, cfg, progress=False)
    assert out["clean"]["0"] > 0.4  # the model learned something, so the attacks have work to do
    assert set(out["attacks"]) == {"pgd", "cw", "autoattack"}
    se = out["standard_error_robust"]
    for a in ("0", "1", "2"):
        pgd_acc = out["attacks"]["pgd"]["robust"][a][a]
        assert out["attacks"]["autoattack"]["robust"][a][a] <= pgd_acc + 3 * se
        assert pgd_acc <= out["clean_on_robust_subset"][a]
    assert out["robust"] == out["attacks"]["pgd"]["robust"]
    assert out["attacks"]["pgd"]["robust"]["0"]["0"] < out["clean_on_robust_subset"]["0"]  # the attack bites
    names = {c["check"] for c in out["checks"]}
    assert {"attacked <= clean", "pgd <= random noise", "autoattack <= pgd", "more steps do not help"} <= names
    assert all(c["passed"] for c in out["checks"]), [c for c in out["checks"] if not c["passed"]]
    assert {"clean", "pgd at level 0"} <= set(out["hierarchical"])


def test_failed_sanity_check_is_flagged(trained):
    from hirobust.evaluate import sanity_checks

    entry = {"standard_error_robust": 0.01, "noise_accuracy": {"0": 0.2},
             "attacks": {"pgd": {"clean_on_subset": {"0": 0.5}, "robust": {"0": {"0": 0.45}}}}}
    checks = sanity_checks(entry, {"pgd": {"0": 0.9}})  # attacked accuracy above clean: a broken attack
    assert not [c for c in checks if c["check"] == "attacked <= clean"][0]["passed"]
    assert not [c for c in checks if c["check"] == "pgd <= random noise"][0]["passed"]


def test_hierarchical_metrics():
    h = Hierarchy.from_paths({"a": ["x", "r"], "b": ["x", "r"], "c": ["y", "r"], "d": ["z", "s"]})
    truth = torch.tensor([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1]])
    pred = torch.tensor([[0, 0, 0],   # all right
                         [0, 0, 0],   # leaf wrong, sibling: distance 1
                         [0, 1, 0],   # leaf wrong, cousin: distance 2; its level-1 ancestor x != predicted y
                         [0, 2, 1]])  # leaf wrong, other root: distance 3
    m = hierarchical_metrics(pred, truth, h)
    assert m["mistake_severity"] == pytest.approx((1 + 2 + 3) / 3)
    assert m["consistency"]["1"] == pytest.approx(2 / 4)  # rows 0 and 1
    assert m["consistency"]["2"] == pytest.approx(3 / 4)  # row 3's leaf 'a' is under r, predicted s
    assert m["full_path_accuracy"] == pytest.approx(1 / 4)


def test_bad_eval_config():
    with pytest.raises(ValueError, match="unknown attack 'fgsm'"):
        EvalConfig(attacks=["fgsm"])


def _accuracies(node, path=()):
    """Every (path, value, interval) of an accuracy in a model entry: X beside X_ci95, recursively."""
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        ci = node.get(f"{k}_ci95")
        if ci is not None and isinstance(v, dict):
            for sub, val in v.items():
                if isinstance(val, dict):
                    for b, x in val.items():
                        yield path + (k, sub, b), x, ci[sub][b]
                elif sub in ci:
                    yield path + (k, sub), val, ci[sub]
        elif ci is not None:
            yield path + (k,), v, ci
        if isinstance(v, dict) and not k.endswith("_ci95") and k != "per_image":
            yield from _accuracies(v, path + (k,))


def test_every_accuracy_has_n_and_an_interval_and_per_image_results_reproduce_it(trained):
    from hirobust.records import correct, subset_of
    from hirobust.stats import accuracy

    clf, test, tree = trained
    cfg = EvalConfig(eps=4 / 255, steps=3, attacks=["pgd", "cw"], robust_samples=40, batch_size=40,
                     eps_sweep=[2 / 255], eps_sweep_levels=[0, -1], sweep_samples=24, check_more_steps=True)
    out = evaluate_model(clf, test, tree, cfg, progress=False)
    found = list(_accuracies(out))
    keys = {p[0] for p, _, _ in found}
    assert {"clean", "robust", "transfer_success", "noise_accuracy", "clean_on_robust_subset"} <= keys
    for path, v, (lo, hi) in found:
        assert lo <= v <= hi, path
    assert out["n"] == {"clean": len(test), "robust": 40, "pgd": 40, "cw": 40, "sweep": 24}
    for h in out["hierarchical"].values():
        assert h["full_path_accuracy_ci95"][0] <= h["full_path_accuracy"] <= h["full_path_accuracy_ci95"][1]
    assert set(out["eps_sweep_by_level"]) == {"0", "2"}  # the leaf and the top level
    for a in ("0", "1", "2"):  # the packed per-image results give back every robust number and interval
        for b in ("0", "1", "2"):
            acc = accuracy(correct(out, "pgd", a, b))
            assert acc["value"] == pytest.approx(out["robust"][a][b]) and acc["ci95"] == out["robust_ci95"][a][b]
            assert bool((correct(out, "pgd", a, b) <= correct(out, "clean", 0, b)).all())  # robust ⊆ clean-right
    y, right = subset_of(out, "clean")
    assert len(y) == len(test) and float(right["0"].float().mean()) == pytest.approx(out["clean"]["0"])
    assert out["pgd_more_steps_leaf"]["robust_ci95"][0] <= out["pgd_more_steps_leaf"]["robust"]


@pytest.mark.parametrize("version", ["reduced", "standard"])
def test_autoattack_version_is_run_as_named(trained, monkeypatch, version):
    from pyautoattack import AutoAttack

    ran = []

    def fake(self, x, y, batch_size=None):  # records the attacks the evaluator asked for; returns the clean images
        ran.append((self.version, list(self.attacks_to_run), self.apgd_targeted.n_target_classes))
        return x

    monkeypatch.setattr(AutoAttack, "run_standard_evaluation", fake)
    clf, test, tree = trained
    cfg = EvalConfig(eps=4 / 255, steps=1, attacks=["autoattack"], robust_samples=16, batch_size=16,
                     autoattack_version=version)
    evaluate_model(clf, test, tree, cfg, progress=False)
    leaf = ran[0]
    if version == "standard":
        assert leaf[0] == "standard" and leaf[1] == ["apgd-ce", "apgd-t", "fab-t", "square"]
        assert leaf[2] == min(9, tree.num_nodes(0) - 1)
        assert ran[-1][1] == ["apgd-ce", "fab", "square"]  # the 2-node top level: no targeted attacks
    else:
        assert leaf[1] == ["apgd-ce", "apgd-t"]
    with pytest.raises(ValueError, match="autoattack_version"):
        EvalConfig(autoattack_version="plus")
