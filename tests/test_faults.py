"""Faults: a kill at every step of the checkpoint protocol, a second writer, an output that is a file, permissions."""

import os
import shutil
import stat
import time

import pytest
import torch
from test_train import _method, _weights

from hirobust.app.cli import main
from hirobust.io import RunLock, write_json
from hirobust.settings import TrainConfig
from hirobust.train import Interrupted, Trainer

TINY = ["model.name=hirobust-tiny", "model.pretrained=random",
        "data.dataset=synthetic", "train.epochs=1", "train.batch_size=32"]


def _interrupted_run(tmp_path, tiny_clip, synth, cfg):
    """A run stopped at step 5 with checkpoints at steps 3 (checkpoint/) and a complete newer copy at step 5."""
    part = _method(tiny_clip, synth)

    def stop(step, _):
        if step == 5:
            raise Interrupted

    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        Trainer(cfg).fit(part, synth[0], run, progress=False, callback=stop)
    return run


@pytest.mark.parametrize("state", ["tmp-partial", "between-renames", "old-half-deleted", "old-complete-leftover"])
def test_a_kill_anywhere_in_the_checkpoint_protocol_resumes_bit_identically(tmp_path, tiny_clip, synth, state):
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, ckpt_every=3, log_every=1)
    full = _method(tiny_clip, synth)
    Trainer(cfg).fit(full, synth[0], tmp_path / "full", progress=False)
    run = _interrupted_run(tmp_path, tiny_clip, synth, cfg)
    ck = run / "checkpoint"
    if state == "tmp-partial":  # killed while writing the new checkpoint: tmp lacks its state.json
        shutil.copytree(ck, run / "checkpoint.tmp")
        (run / "checkpoint.tmp" / "state.json").unlink()
    elif state == "between-renames":  # checkpoint -> checkpoint.old done, tmp -> checkpoint not yet
        shutil.copytree(ck, run / "checkpoint.tmp")
        ck.rename(run / "checkpoint.old")
    elif state == "old-half-deleted":  # killed during rmtree(checkpoint.old)
        shutil.copytree(ck, run / "checkpoint.old")
        (run / "checkpoint.old" / "state.json").unlink()
        (run / "checkpoint.old" / "trainable.safetensors").unlink()
    else:
        shutil.copytree(ck, run / "checkpoint.old")
    resumed = _method(tiny_clip, synth)
    Trainer(cfg).fit(resumed, synth[0], run, resume=True, progress=False)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint"]


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):
        rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(out), *TINY])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and f"pid {os.getpid()}" in err and len(err.splitlines()) == 1
        assert not (out / "hirobust.json").exists()
    with RunLock(out):  # released: the next one gets it
        pass


def test_an_output_that_is_a_file_is_refused_before_work(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(f), "data.dataset=synthetic"])
    assert rc == 2 and "is a file" in capsys.readouterr().err and f.read_text() == "x"


def test_written_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_tree_show_json_reads_back_as_a_hierarchy_file(tmp_path, capsys):
    assert main(["tree", "show", "fashion-mnist", "--json"]) == 0
    f = tmp_path / "trees.json"
    f.write_text(capsys.readouterr().out)
    from hirobust.hierarchy import load_forest

    a, b = load_forest("fashion-mnist"), load_forest(str(f))
    assert [t.name for t in a] == [t.name for t in b] and all(x == y for x, y in zip(a, b))


PATHS = {"item 0": ["group 0"], "item 1": ["group 0"]}


@pytest.mark.parametrize("content,match", [
    ("[1, 2]", "must hold a JSON object"),
    ('{"num_levels": "3", "paths": {"item 0": ["g"]}}', "num_levels must be an integer"),
    ('{"paths": ["item 0"]}', "'paths' must map"),
    ('{"paths": {"item 0": ["g"], "item 0": ["h"]}}', "duplicate key 'item 0'"),
    ('{"paths": {"item 0": [null]}}', "must be a list of node names"),
    ('{"paths": {"x": ["A", "B"], "y": ["B", "A"]}}', "cycle at node"),
    ("{not json", "is not a valid JSON file"),
    ('{"trees": "x"}', "'trees' must map"),
    ('{"trees": {"a.b": {"paths": {"item 0": ["g"]}}}}', "must not contain '.'"),
])
def test_malformed_tree_files_are_one_line_errors_naming_the_file(tmp_path, capsys, content, match):
    f = tmp_path / "tree.json"
    f.write_text(content)
    assert main(["tree", "show", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err
    if "cycle" not in match:
        assert str(f) in err


def test_a_directory_as_hierarchy_is_a_clear_error(tmp_path, capsys):
    assert main(["tree", "show", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tecoa"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *TINY, "options.eps=4/255"]) == 0
    return run


@pytest.mark.parametrize("meta,match", [
    ("[1]", "must hold a JSON object"),
    ("{broken", "is not a valid JSON file"),
    ('{"model": "hirobust-tiny"}', "lacks the key 'weights'"),
    ('{"model": "hirobust-tiny", "weights": "../../elsewhere.safetensors"}', "outside the run directory"),
])
def test_a_damaged_run_directory_is_a_one_line_error(tmp_path, tiny_run, capsys, meta, match):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "hirobust.json").write_text(meta)
    rc = main(["--quiet", "evaluate", "--model", f"t={run}", "--out", str(tmp_path / "ev"), "data.dataset=synthetic"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err


def test_resume_accepts_changed_log_and_checkpoint_intervals(tmp_path, tiny_clip, synth):
    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, ckpt_every=3, log_every=1)
    run = _interrupted_run(tmp_path, tiny_clip, synth, cfg)
    import dataclasses

    other = dataclasses.replace(cfg, ckpt_every=5, log_every=2)
    Trainer(other).fit(_method(tiny_clip, synth), synth[0], run, resume=True, progress=False)
    with pytest.raises(ValueError, match="another run"):
        Trainer(dataclasses.replace(cfg, lr=0.01)).fit(_method(tiny_clip, synth), synth[0], run, resume=True,
                                                      progress=False)


def test_reports_never_hold_nan_and_compare_leaves_undefined_values_out(tmp_path):
    import json

    from hirobust.app.compare import rows

    p = write_json({"a": float("nan"), "b": [1.0, float("inf")]}, tmp_path / "r.json")
    assert json.loads(p.read_text()) == {"a": None, "b": [1.0, None]}
    rep = lambda tsr, ds: {"num_levels": 2, "dataset": ds,  # noqa: E731
                           "models": {"m": {"clean": {"0": 0.5, "1": 0.7}, "robust": {"0": {"0": 0.2}, "1": {"1": 0.4}},
                                            "transfer_success": {"1": {"0": tsr}}}}}
    _, table = rows([rep(None, "a"), rep(0.3, "b"), rep(float("nan"), "c")])
    assert table[0]["TSR(1→0)"] == pytest.approx(0.3) and table[0]["datasets"] == 3


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    import hirobust.app.cli as cli

    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "tree", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["tree", "list"])


@pytest.mark.parametrize("override,match", [
    ("train.epochs=[1", "is not valid (YAML"),
    ("train=5", "config section 'train' must be a mapping"),
])
def test_malformed_overrides_are_one_line_errors(tmp_path, capsys, override, match):
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "r"), *TINY, override])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err


def test_unreadable_checkpoints_are_one_line_errors(tmp_path, tiny_run, capsys):
    import pickle

    pkl = tmp_path / "x.pt"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    w = run / "model" / "open_clip_model.safetensors"
    w.write_bytes(w.read_bytes()[:100])  # truncated
    for model in (f"x=hirobust-tiny:{pkl}", f"x=hirobust-tiny:{bad}", f"x={run}"):
        rc = main(["--quiet", "evaluate", "--model", model, "--out", str(tmp_path / "ev"), "data.dataset=synthetic"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and "cannot be read" in err[-1], err
        assert not (tmp_path / "ev" / "report.json").exists()


def test_a_failed_report_write_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    import json

    from hirobust.app import report as rep

    out = tmp_path / "ev"
    first = {"dataset": "d", "eps": 0.1, "num_levels": 1, "models": {}}
    rep.write_report(first, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rep, "to_markdown", full_disk)
    with pytest.raises(OSError):
        rep.write_report({**first, "dataset": "other"}, out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and json.loads((out / "report.json").read_text())["dataset"] == "d"
    assert not [p for p in out.iterdir() if p.name.startswith(".report-")]


def test_a_failed_evaluation_resumes_without_redoing_finished_models(tmp_path, tiny_run, monkeypatch, capsys):
    import json

    from hirobust.app import evaluation as pipeline

    out = tmp_path / "ev"
    ev = ["--quiet", "evaluate", "--model", f"a={tiny_run}", "--model", "b=hirobust-tiny:", "--out", str(out),
          "data.dataset=synthetic", "eval.steps=1", "eval.robust_samples=16"]
    real, calls = pipeline.evaluate_models, []

    def failing(models, *a, **k):
        calls.append(list(models))
        if list(models) == ["b"]:
            raise OSError(28, "No space left on device")
        return real(models, *a, **k)

    monkeypatch.setattr(pipeline, "evaluate_models", failing)
    assert main(ev) == 2  # a full disk is the machine's setup, not a bug: one line, and what to do
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "--resume" in err
    assert not (out / "report.json").exists() and (out / ".cells" / "a.json").exists()
    monkeypatch.setattr(pipeline, "evaluate_models", lambda m, *a, **k: calls.append(list(m)) or real(m, *a, **k))
    calls.clear()
    assert main([*ev, "--resume"]) == 0
    assert calls == [["b"]]  # model a came from its kept cell
    assert set(json.loads((out / "report.json").read_text())["models"]) == {"a", "b"}
    calls.clear()
    capsys.readouterr()
    assert main([*ev[:-1], "eval.robust_samples=8", "--resume"]) == 2  # other settings: refused, named
    err = capsys.readouterr().err
    assert "eval settings.robust_samples changed" in err and "--overwrite" in err and calls == []
    assert main([*ev[:-1], "eval.robust_samples=8", "--overwrite"]) == 0  # nothing reused
    assert calls == [["a"], ["b"]]


def test_a_tree_naming_a_class_the_dataset_lacks_is_refused(tmp_path, capsys):
    import json

    from hirobust.data.synthetic import synthetic_paths

    paths = dict(synthetic_paths(2, 3))
    paths["item 99"] = ["group 9", "family 9"]
    f = tmp_path / "tree.json"
    f.write_text(json.dumps({"paths": paths}))
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "r"), *TINY,
               f"data.hierarchy={f}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "names class 'item 99'" in err and len(err.splitlines()) == 1


def test_a_damaged_checkpoint_state_names_the_file(tmp_path, tiny_clip, synth):
    import json

    cfg = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, ckpt_every=3, log_every=1)
    run = _interrupted_run(tmp_path, tiny_clip, synth, cfg)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    del state["identity"]
    (run / "checkpoint" / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="bad or missing identity"):
        Trainer(cfg).fit(_method(tiny_clip, synth), synth[0], run, resume=True, progress=False)


def test_finetune_into_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = main(["--quiet", "finetune", "--method", "tecoa", "--out", str(f), *TINY])
    assert rc == 2 and "is a file" in capsys.readouterr().err and f.read_text() == "x"


def test_a_resumed_evaluation_gives_the_same_report(tmp_path, tiny_run, monkeypatch):
    import json

    from hirobust.app import evaluation as pipeline

    ev = lambda out: ["--quiet", "evaluate", "--model", f"a={tiny_run}", "--model", f"b={tiny_run}",  # noqa: E731
                      "--out", str(out), "data.dataset=synthetic", "eval.steps=2", "eval.robust_samples=16",
                      "eval.eps_sweep=[2/255]", "eval.sweep_samples=8"]
    assert main(ev(tmp_path / "whole")) == 0
    real = pipeline.evaluate_models

    def killed(models, *a, **k):
        if list(models) == ["b"]:
            raise KeyboardInterrupt  # as a kill after model a was kept
        return real(models, *a, **k)

    monkeypatch.setattr(pipeline, "evaluate_models", killed)
    assert main(ev(tmp_path / "parts")) == 130  # Ctrl-C: one line, exit 130, the finished cells kept
    monkeypatch.setattr(pipeline, "evaluate_models", real)
    assert main([*ev(tmp_path / "parts"), "--resume"]) == 0
    strip = lambda r: {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in r["models"].items()}  # noqa: E731
    a = json.loads((tmp_path / "whole" / "report.json").read_text())
    b = json.loads((tmp_path / "parts" / "report.json").read_text())
    assert strip(a) == strip(b)


def test_kill_9_during_training_then_resume_is_bit_identical(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    args = [*TINY, "options.eps=4/255", "train.epochs=3", "train.ckpt_every=2", "train.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda out, *extra: [sys.executable, "-m", "hirobust", "--quiet", "finetune", "--method", "tecoa",  # noqa: E731
                               "--out", str(out), *args, *extra]
    subprocess.run(run(tmp_path / "whole"), env=env, check=True, capture_output=True, timeout=300)
    p = subprocess.Popen(run(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while not state.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "killed" / "hirobust.json").exists(), "the run finished before it could be killed"
    subprocess.run(run(tmp_path / "killed", "--resume"), env=env, check=True, capture_output=True, timeout=300)
    a = load_file(str(tmp_path / "whole" / "model" / "open_clip_model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model" / "open_clip_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_evaluation_resumes_after_its_last_finished_attack_cell(tmp_path, tiny_run, monkeypatch):
    import json

    from hirobust import evaluate

    ev = lambda out: ["--quiet", "evaluate", "--model", f"a={tiny_run}", "--out", str(out),  # noqa: E731
                      "data.dataset=synthetic", "eval.steps=2", "eval.robust_samples=16", "eval.attacks=[pgd,cw]"]
    assert main(ev(tmp_path / "whole")) == 0
    real, calls = evaluate.attacked_predictions, []

    def dies_on_the_fourth(*a, **k):
        calls.append(a[3])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(evaluate, "attacked_predictions", dies_on_the_fourth)
    assert main(ev(tmp_path / "parts")) == 130  # Ctrl-C: one line, exit 130, the finished cells kept
    assert len(list((tmp_path / "parts" / ".cells" / "a").glob("*.safetensors"))) == 3  # pgd L0-L2 kept
    calls.clear()
    monkeypatch.setattr(evaluate, "attacked_predictions", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    assert main([*ev(tmp_path / "parts"), "--resume"]) == 0
    assert calls == [0, 1, 2]  # only CW's three levels were attacked again
    strip = lambda r: {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in r["models"].items()}  # noqa: E731
    a = json.loads((tmp_path / "whole" / "report.json").read_text())
    b = json.loads((tmp_path / "parts" / "report.json").read_text())
    assert strip(a) == strip(b)


def test_an_impossible_output_path_is_a_one_line_error(tmp_path, capsys):
    rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(tmp_path / ("x" * 300)),
               "data.dataset=synthetic"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot write into output directory" in err and len(err.splitlines()) == 1


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one_and_resumes_bit_identically(tmp_path, monkeypatch,
                                                                                          capsys):
    from safetensors.torch import load_file

    from hirobust import train

    args = [*TINY, "options.eps=4/255", "train.epochs=3", "train.ckpt_every=2", "train.log_every=1"]
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(tmp_path / "whole"), *args]) == 0
    real, calls = train.save_safetensors, []

    def full_on_the_second_checkpoint(tensors, path, *a, **k):
        calls.append(path)
        if len(calls) == 3:  # the first file of the second checkpoint
            raise OSError(28, "No space left on device", str(path))
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(train, "save_safetensors", full_on_the_second_checkpoint)
    run = tmp_path / "killed"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "--resume" in err
    assert "checkpoint of step 4 (the last complete checkpoint is kept)" in err
    assert not (run / "checkpoint.tmp").exists() and not (run / "hirobust.json").exists()
    import json

    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2
    monkeypatch.setattr(train, "save_safetensors", real)
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *args, "--resume"]) == 0
    a = load_file(str(tmp_path / "whole" / "model" / "open_clip_model.safetensors"))
    b = load_file(str(run / "model" / "open_clip_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_during_evaluation_then_resume_gives_the_same_report(tmp_path, tiny_run):
    import json
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ev = lambda out, *extra: [sys.executable, "-m", "hirobust", "--quiet", "evaluate", "--model",  # noqa: E731
                              f"a={tiny_run}", "--out", str(out), "data.dataset=synthetic", "eval.steps=10",
                              "eval.robust_samples=64", "eval.attacks=[pgd,cw]", "eval.eps_sweep=[2/255]",
                              "eval.sweep_samples=16", *extra]
    subprocess.run(ev(tmp_path / "whole"), env=env, check=True, capture_output=True, timeout=300)
    p = subprocess.Popen(ev(tmp_path / "parts"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "parts" / ".cells" / "a"
    deadline = time.time() + 240
    while not list(cells.glob("*.safetensors")) and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "parts" / "report.json").exists(), "the evaluation finished before it could be killed"
    kept = len(list(cells.glob("*.safetensors")))
    assert 1 <= kept < 6
    subprocess.run(ev(tmp_path / "parts", "--resume"), env=env, check=True, capture_output=True, timeout=300)
    strip = lambda r: {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in r["models"].items()}  # noqa: E731
    a = json.loads((tmp_path / "whole" / "report.json").read_text())
    b = json.loads((tmp_path / "parts" / "report.json").read_text())
    assert strip(a) == strip(b)


def test_sigterm_raises_once_and_the_previous_handler_comes_back():
    import signal

    from hirobust.app.stop import Terminated, sigterm_stops, terminated

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_stops():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # not reached: the handler raises at once
    assert terminated() and signal.getsignal(signal.SIGTERM) is before
    with sigterm_stops():  # a second SIGTERM while the first is being cleaned up does not cut the cleanup short
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_while_a_checkpoint_is_written_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    import json

    from hirobust import train

    args = [*TINY, "options.eps=4/255", "train.epochs=3", "train.ckpt_every=2", "train.log_every=1"]
    real, calls = train.save_safetensors, []

    def stopped_in_the_second_checkpoint(tensors, path, *a, **k):
        calls.append(path)
        if len(calls) == 4:  # the optimizer file of the second checkpoint, after its weights were written
            raise KeyboardInterrupt
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(train, "save_safetensors", stopped_in_the_second_checkpoint)
    run = tmp_path / "run"
    assert main(["--quiet", "finetune", "--method", "tecoa", "--out", str(run), *args]) == 130
    assert not (run / "checkpoint.tmp").exists()
    with RunLock(run):  # released
        pass
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2  # the last complete one


def test_sigterm_during_training_stops_cleanly_and_resumes(tmp_path):
    """A cluster's time limit or preemption (SIGTERM): one line, exit 143, no partial checkpoint, the lock
    released, and --resume finishes the run."""
    import signal
    import subprocess
    import sys

    args = [*TINY, "options.eps=4/255", "train.epochs=3", "train.ckpt_every=2", "train.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda *extra: [sys.executable, "-m", "hirobust", "--quiet", "finetune", "--method", "tecoa",  # noqa: E731
                          "--out", str(tmp_path / "run"), *args, *extra]
    p = subprocess.Popen(run(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = tmp_path / "run" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while not state.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    err = p.communicate(timeout=120)[1].strip()
    assert not (tmp_path / "run" / "hirobust.json").exists(), "the run finished before it could be stopped"
    assert p.returncode == 143, err
    last = err.splitlines()[-1]  # (open_clip's own warning about random weights may come before it)
    assert "Traceback" not in err and "stopped by SIGTERM" in last and "--resume" in last
    assert not (tmp_path / "run" / "checkpoint.tmp").exists()
    with RunLock(tmp_path / "run"):  # released
        pass
    subprocess.run(run("--resume"), env=env, check=True, capture_output=True, timeout=300)
    assert (tmp_path / "run" / "hirobust.json").exists()
