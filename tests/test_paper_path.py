"""The paper path's dependencies (issue 22): everything the protocol needs is installed, or the run is refused before
any work, naming what to install."""

import importlib.util

from hirobust.app.cli import main


def test_autoattack_and_h5py_are_dependencies():
    from importlib.metadata import requires

    deps = " ".join(requires("hirobust") or [])
    assert "pyautoattack" in deps and "h5py" in deps
    assert importlib.util.find_spec("pyautoattack") and importlib.util.find_spec("h5py")


def test_a_missing_autoattack_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from hirobust.app import evaluation

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyautoattack" else real(name, *a))
    calls = []
    monkeypatch.setattr(evaluation, "evaluate_models", lambda *a, **k: calls.append(a))
    out = tmp_path / "ev"
    for extra in ([], ["--datasets", "synthetic"]):
        rc = main(["--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(out), "data.dataset=synthetic",
                   "eval.attacks=[pgd,autoattack]", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "pip install pyautoattack" in err and len(err.splitlines()) == 1, err
        assert calls == [] and not out.exists()
