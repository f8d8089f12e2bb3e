"""Run directories protect the user's files and results match their inputs (issue 21): a foreign --out is refused
and left untouched, --overwrite keeps nothing of the old run, --resume after a changed input is refused naming it."""

import json
import shutil

import pytest

from hirobust.app.cli import main

TINY = ["model.name=hirobust-tiny", "model.pretrained=random", "data.dataset=synthetic", "train.epochs=1",
        "train.batch_size=32", "options.eps=4/255"]


def _finetune(out, *extra):
    flags = [e for e in extra if e.startswith("--")]
    return main(["--quiet", "finetune", "--method", "tecoa", "--out", str(out), *flags, *TINY,
                 *(e for e in extra if not e.startswith("--"))])


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rd") / "tecoa"
    assert _finetune(out) == 0
    return out


def _tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_foreign_out_folder_is_refused_and_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "my_experiment.txt").write_text("precious")
    (out / "report.json").write_text('{"mine": 1}')
    before = _tree(out)
    assert _finetune(out) == 2
    assert "not a hirobust run" in _err(capsys)
    assert _tree(out) == before
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic"])
    assert rc == 2 and _tree(out) == before


def test_evaluations_and_finetunes_never_share_a_folder(tmp_path, run, capsys):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    before = _tree(mine)
    rc = main(["--quiet", "evaluate", "--model", f"x={mine}", "--out", str(mine), "data.dataset=synthetic"])
    assert rc == 2 and "holds a hirobust finetune run" in _err(capsys)
    assert _tree(mine) == before
    ev = tmp_path / "ev"
    assert main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(ev), "data.dataset=synthetic",
                 "eval.steps=1", "eval.robust_samples=8"]) == 0
    capsys.readouterr()
    evb = _tree(ev)
    assert _finetune(ev, ) == 2 and "holds a hirobust evaluate run" in _err(capsys)
    assert _tree(ev) == evb


def test_an_existing_run_needs_resume_or_overwrite_and_overwrite_keeps_nothing_old(tmp_path, run, capsys):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    assert _finetune(mine) == 2
    err = _err(capsys)
    assert "--resume" in err and "--overwrite" in err
    (mine / "model" / "hirobust_head.safetensors").write_bytes(b"a HiRo head of an earlier run")
    (mine / "checkpoint" / "stale.bin").write_bytes(b"x")
    assert _finetune(mine, "--overwrite", "train.seed=1") == 0
    assert not (mine / "model" / "hirobust_head.safetensors").exists()
    assert not (mine / "checkpoint" / "stale.bin").exists()
    assert json.loads((mine / "hirobust.json").read_text())["config"]["train"]["seed"] == 1
    assert not list(tmp_path.glob(".run.hirobust-*"))  # nothing staged is left beside it


def test_overwrite_never_touches_a_file_hirobust_did_not_write(tmp_path, run, capsys):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    (mine / "notes.txt").write_text("mine")
    assert _finetune(mine, "--overwrite") == 2
    assert "'notes.txt'" in _err(capsys) and (mine / "notes.txt").read_text() == "mine"


def test_a_failed_overwrite_leaves_the_old_run_whole(tmp_path, run, monkeypatch):
    from hirobust.app import finetune as ft

    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    before = {k: v for k, v in _tree(mine).items() if not k.endswith((".lock", "run.log", ".hirobust-run"))}

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ft, "_export", boom)
    assert _finetune(mine, "--overwrite") == 2
    after = {k: v for k, v in _tree(mine).items() if not k.endswith((".lock", "run.log", ".hirobust-run"))}
    assert after == before and not list(tmp_path.glob(".run.hirobust-*"))


def test_empty_out_and_duplicate_model_names_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _finetune("") == 2 and "--out is empty" in _err(capsys)
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--model", "x=hirobust-tiny:", "--out", "ev",
               "data.dataset=synthetic"])
    assert rc == 2 and "'x' is given twice" in _err(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", ["tree", "pretrained"])
def test_resume_after_a_changed_tree_or_pretrained_checkpoint_is_refused_naming_it(tmp_path, capsys, change):
    from hirobust.data.synthetic import synthetic_paths
    from hirobust.io import save_safetensors
    from hirobust.models.clip import load_clip

    paths = dict(synthetic_paths(2, 3))
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"paths": paths}))
    ck = tmp_path / "clip.safetensors"
    save_safetensors(load_clip("hirobust-tiny", None).model.state_dict(), ck)
    out = tmp_path / "run"
    args = [f"data.hierarchy={tree}", f"model.pretrained={ck}", "train.ckpt_every=1"]
    from hirobust.app import finetune as ft
    from hirobust.train import Interrupted

    def stop(step, _):
        if step == 1:
            raise Interrupted

    from hirobust.app.config import apply_overrides
    from hirobust.app.schema import FinetuneConfig
    from hirobust.typed import from_dict

    cfg = from_dict(FinetuneConfig, apply_overrides({"method": "tecoa", "out": str(out)}, [*TINY, *args]))
    with pytest.raises(Interrupted):
        ft.finetune(cfg, progress=False, callback=stop)
    if change == "tree":  # the same path, the leaves regrouped
        names = sorted(paths)
        paths[names[0]], paths[names[-1]] = paths[names[-1]], paths[names[0]]
        tree.write_text(json.dumps({"paths": paths}))
    else:  # other weights, same path
        save_safetensors(load_clip("hirobust-tiny", None, seed=1).model.state_dict(), ck)
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(out), "--resume", *TINY, *args])
    err = _err(capsys)
    assert rc == 2 and ("the tree" if change == "tree" else "the pretrained checkpoint") in err, err
    assert "changed" in err


@pytest.mark.parametrize("change", ["weights", "head", "metadata"])
def test_evaluate_resume_after_a_changed_run_file_is_refused_naming_it(tmp_path, run, capsys, change):
    import os

    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", f"a={mine}", "--out", str(out), "data.dataset=synthetic", "eval.steps=1",
          "eval.robust_samples=8"]
    assert main(ev) == 0
    capsys.readouterr()
    if change == "weights":  # other weights with the same size and mtime (cp -p)
        w = mine / "model" / "open_clip_model.safetensors"
        st = w.stat()
        data = bytearray(w.read_bytes())
        data[-1] ^= 1
        w.write_bytes(bytes(data))
        os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
        what = "weights"
    elif change == "head":
        (mine / "model" / "hirobust_head.safetensors").write_bytes(b"x")
        what = "head tensors"
    else:
        meta = json.loads((mine / "hirobust.json").read_text())
        meta["head"]["note"] = "edited"
        (mine / "hirobust.json").write_text(json.dumps(meta))
        what = "hirobust.json"
    assert main([*ev, "--resume"]) == 2
    err = _err(capsys)
    assert "model 'a'" in err and what in err and "--overwrite" in err


def test_a_damaged_evaluation_cell_names_the_file(tmp_path, capsys):
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", "a=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
          "eval.steps=1", "eval.robust_samples=8"]
    assert main(ev) == 0
    capsys.readouterr()
    (out / ".cells" / "a.json").write_text("{broken")
    assert main([*ev, "--resume"]) == 2
    assert "a.json" in _err(capsys)


def test_reevaluation_with_fewer_models_leaves_no_stale_result(tmp_path, capsys):
    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--out", str(out), "data.dataset=synthetic", "eval.steps=1", "eval.robust_samples=8"]
    assert main([*ev, "--model", "a=hirobust-tiny:", "--model", "b=hirobust-tiny:"]) == 0
    assert main([*ev, "--model", "a=hirobust-tiny:", "--overwrite"]) == 0
    assert len(list((out / "clip_benchmark").glob("*.json"))) == 1
    assert set(json.loads((out / "report.json").read_text())["models"]) == {"a"}
    assert not (out / ".cells" / "b.json").exists()


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    from hirobust.app import finetune as ft

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_finetune", interrupt)
    assert _finetune(tmp_path / "r") == 130
    assert "interrupted; resume with --resume" in capsys.readouterr().err


def test_a_closed_stdout_ends_quietly():
    import subprocess
    import sys

    p = subprocess.run(f"{sys.executable} -m hirobust tree show fashion-mnist | head -1", shell=True,
                       capture_output=True, text=True)
    assert p.stderr == "" and len(p.stdout.splitlines()) == 1


def test_a_cache_path_that_is_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    f = tmp_path / "cache"
    f.write_text("x")
    monkeypatch.setenv("HIROBUST_CACHE", str(f))
    from hirobust.errors import ConfigError
    from hirobust.hierarchy.wordnet import cache_dir

    with pytest.raises(ConfigError, match="is a file, not a folder"):
        cache_dir()


def test_safetensors_full_disk_is_an_oserror_with_errno(tmp_path, monkeypatch):
    import errno

    import safetensors.torch
    import torch

    from hirobust.io import save_safetensors

    def full(*a, **k):
        raise safetensors.SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                          "message: \"No space left on device\" })")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as e:
        save_safetensors({"a": torch.zeros(2)}, tmp_path / "x.safetensors")
    assert e.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_a_run_whose_files_changed_since_export_is_refused(tmp_path, run, capsys):
    mine = tmp_path / "run"
    shutil.copytree(run, mine)
    (mine / "model" / "hirobust_head.safetensors").write_bytes(b"another run's head")
    ev = ["--quiet", "evaluate", "--model", f"a={mine}", "--out", str(tmp_path / "ev"), "data.dataset=synthetic"]
    assert main(ev) == 2 and "not written by this run" in _err(capsys)
    (mine / "model" / "hirobust_head.safetensors").unlink()
    w = mine / "model" / "open_clip_model.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + bytes([w.read_bytes()[-1] ^ 1]))
    assert main(ev) == 2 and "not the file this run wrote" in _err(capsys)


def test_a_checkpoint_with_an_extra_tensor_names_it(tmp_path, capsys):
    import torch

    from hirobust.io import save_safetensors
    from hirobust.models.clip import load_clip

    f = tmp_path / "extra.safetensors"
    save_safetensors({**load_clip("hirobust-tiny", None).model.state_dict(), "extra.weight": torch.zeros(3)}, f)
    rc = main(["--quiet", "evaluate", "--model", f"x=hirobust-tiny:{f}", "--out", str(tmp_path / "ev"),
               "data.dataset=synthetic"])
    err = _err(capsys)
    assert rc == 2 and "'extra.weight'" in err and "model name it was trained with" not in err


def test_a_failed_start_s_leftovers_are_a_new_folder_for_any_command(tmp_path):
    import json as _json

    from hirobust.app.outdir import MARKER, claim

    d = tmp_path / "r"
    d.mkdir()
    (d / MARKER).write_text(_json.dumps({"kind": "study"}))  # a study that stopped before writing anything
    (d / "run.log").write_text("...")
    with claim(d, "finetune") as where:
        assert where == d
    assert _json.loads((d / MARKER).read_text())["kind"] == "finetune"
