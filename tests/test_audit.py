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
