"""Installable like a library: the wheel holds everything a command needs (configs, trees, class lists, model
configs). Built here, installed into a fresh venv that sees this environment's dependencies but not the checkout,
and run from outside the checkout."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_built_wheel_runs_from_a_fresh_venv_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("hirobust-*.whl"))
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies of this environment, as a plain path: its .pth files (the editable checkout) are not read
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    where = tmp_path / "elsewhere"
    where.mkdir()

    def run(*args):
        r = subprocess.run([str(env_dir / "bin" / "hirobust"), *args], cwd=where, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    located = subprocess.run([str(py), "-c", "import hirobust; print(hirobust.__file__)"], cwd=where, env=env,
                             capture_output=True, text=True, check=True).stdout
    assert located.startswith(str(site)), located  # the wheel's copy, not the checkout's
    assert "usage: hirobust reproduce" in run("reproduce", "--help")
    assert "method: hiro" in run("reproduce", "--config", "paper/hiro", "--print-config")
    assert "ankle boot" in run("tree", "show", "fashion-mnist")
    run("--quiet", "evaluate", "--model", "x=hirobust-tiny:", "--out", str(where / "ev"), "data.dataset=synthetic",
        "eval.steps=1", "eval.robust_samples=8")
    assert (where / "ev" / "report.json").exists() and (where / "ev" / "report.md").exists()
