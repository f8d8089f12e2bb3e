"""Bad config values: one line naming the key, the value and the allowed range, exit 2, before any work."""

import pytest

from hirobust.app.cli import main

TINY = ["model.name=hirobust-tiny", "model.pretrained=random",
        "data.dataset=synthetic", "train.epochs=1", "train.batch_size=32"]


@pytest.mark.parametrize("override,match", [
    ("train.lr=nan", "train.lr=nan: must be a finite number in (0, 1000]"),
    ("train.lr=1e999", "train.lr=inf"),
    ("train.lr=-1", "train.lr=-1"),
    ("train.epochs=abc", "train.epochs='abc'"),
    ("train.epochs=inf", "train.epochs=inf"),
    ("train.train_samples=-1", "train.train_samples=-1: must be an integer >= 1"),
    ("train.max_steps=0", "train.max_steps=0"),
    ("train.log_every=0", "train.log_every=0"),
    ("train.batch_size=0", "train.batch_size=0"),
    ("options.alpha=-1", "options.alpha=-1"),
    ("options.alpha=nan", "options.alpha=nan"),
    ("options.steps=-2", "options.steps=-2"),
    ("options.eps=nan", "options.eps=nan"),
])
def test_bad_training_values(tmp_path, capsys, override, match):
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "run"), *TINY, override])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override,match", [
    ("options.clip_r=0", "options.clip_r=0"),
    ("options.tau=0", "options.tau=0"),
    ("options.init_depth=-1", "options.init_depth=-1"),
    ("options.text_eps=nan", "options.text_eps=nan"),
])
def test_bad_hiro_values(tmp_path, capsys, override, match):
    rc = main(["--quiet", "finetune", "--method", "hiro", "--out", str(tmp_path / "run"), *TINY, override])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("override,match", [
    ("eval.alpha=-1", "eval.alpha=-1"),
    ("eval.alpha=nan", "eval.alpha=nan"),
    ("eval.robust_samples=-5", "eval.robust_samples=-5"),
    ("eval.robust_samples=0", "eval.robust_samples=0"),
    ("eval.batch_size=-1", "eval.batch_size=-1"),
    ("eval.batch_size=0", "eval.batch_size=0"),
    ("eval.steps=1.5", "eval.steps=1.5"),
    ("eval.attacks=pgd,nosuch", "unknown attack 'nosuch'"),
    ("eval.attack_levels=[0,x]", "eval.attack_levels=[0, 'x']: must be a list of integers, or null"),
    ("eval.eps_sweep=[nan]", "eval.eps_sweep=nan"),
])
def test_bad_evaluation_values(tmp_path, capsys, override, match):
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(tmp_path / "ev"),
               "data.dataset=synthetic", override])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "ev").exists()


def test_bad_pretrain_value(capsys):
    assert main(["--quiet", "pretrain", "epochs=abc"]) == 2
    assert "pretrain.epochs='abc'" in capsys.readouterr().err


def test_training_that_diverges_stops_and_saves_nothing_non_finite(tmp_path, capsys, monkeypatch):
    from hirobust.train import Trainer

    monkeypatch.setattr(Trainer, "_lr_factor", lambda self, step, total: 1e27)  # lr 1e3 × 1e27: it diverges
    run = tmp_path / "run"
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY, "train.optimizer=sgd",
               "train.lr=1e3", "train.log_every=1", "options.eps=4/255"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "non-finite" in err and "step" in err and len(err.splitlines()) == 1, err
    assert not (run / "hirobust.json").exists() and not (run / "checkpoint").exists()


def test_a_nan_model_is_refused_not_evaluated(tmp_path, capsys):
    import json

    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY, "options.eps=4/255"]) == 0
    weights = run / "model" / "open_clip_model.safetensors"
    good = load_file(str(weights))
    bad = {k: (v * float("nan") if v.is_floating_point() else v) for k, v in good.items()}
    save_file(bad, str(weights))
    meta = json.loads((run / "hirobust.json").read_text())
    del meta["digests"]  # as a run written before digests (an edited file is refused by them: tests/test_run_dirs.py)
    (run / "hirobust.json").write_text(json.dumps(meta))
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", f"t={run}", "--out", str(out), "data.dataset=synthetic", "eval.steps=1",
          "eval.robust_samples=16"]
    assert main(ev) == 2
    assert "non-finite logits" in capsys.readouterr().err and not (out / "report.json").exists()
    save_file(good, str(weights))
    meta = json.loads((run / "hirobust.json").read_text())
    meta["head"]["logit_scale"] = "NaN"
    (run / "hirobust.json").write_text(json.dumps(meta))
    assert main(ev) == 2
    assert "logit_scale='NaN'" in capsys.readouterr().err and not (out / "report.json").exists()
