"""Auditing your own model (issue 23): values checked for units, and unknown names answered with a suggestion."""

import pytest

from hirobust.app.cli import main


@pytest.mark.parametrize("args,match", [
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps=4"], "did you mean 4/255?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps_sweep=[2]"],
     "did you mean 2/255?"),
    (["finetune", "--method", "tecoa", "options.eps=8"], "did you mean 8/255?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=synthetic", "eval.eps=4/0"], "divides by zero"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=fashion-mnst"], "did you mean 'fashion-mnist'?"),
    (["evaluate", "--model", "x=hirobust-tiny:", "data.dataset=fashion-mnist", "data.tree=seasn"],
     "did you mean 'season'?"),
    (["finetune", "--method", "tecoa", "data.dataset=fashion-mnist", "data.train_classes=[t-shrt,trouser]"],
     "did you mean 't-shirt'?"),
])
def test_values_in_the_wrong_units_or_misspelt_get_a_hint(tmp_path, capsys, args, match):
    rc = main(["--quiet", args[0], "--out", str(tmp_path / "o"), *args[1:]])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and match in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_the_readme_library_snippet_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's Library example, executed as is (the embedded weights: a random stand-in in the test's cache)."""
    import re
    from pathlib import Path

    from hirobust.io import save_safetensors
    from hirobust.models.clip import embedded_path, load_clip

    monkeypatch.setenv("HIROBUST_CACHE", str(tmp_path / "cache"))  # this test's own: no embedded weights yet
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"## Library\n\n```python\n(.*?)```", text, re.S).group(1)
    assert 'hr.load_clip("hirobust-fmnist-vit", "embedded")' in code
    with pytest.raises(ValueError, match="run `hirobust pretrain`"):
        load_clip("hirobust-fmnist-vit", "embedded")
    save_safetensors(load_clip("hirobust-fmnist-vit", None).model.state_dict(), embedded_path("hirobust-fmnist-vit"))
    exec(compile(code, "README.md", "exec"), {})
    assert re.search(r"tensor\(0?\.?\d", capsys.readouterr().out)
