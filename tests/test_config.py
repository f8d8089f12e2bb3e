"""The typed config: types checked by OmegaConf against each dataclass field, lists as a,b or [a,b], nearest-key
suggestions, --help listing every key with its default, and config errors before torch is imported."""

import subprocess
import sys

import pytest

from hirobust.app.cli import main
from hirobust.app.config import apply_overrides, describe_keys
from hirobust.app.schema import EvalConfig, FinetuneConfig, TrainConfig
from hirobust.typed import from_dict


@pytest.mark.parametrize("text", ["pgd,cw", "[pgd,cw]", "[pgd, cw]"])
def test_a_list_takes_commas_or_brackets(text):
    cfg = from_dict(EvalConfig, apply_overrides({}, [f"attacks={text}"]))
    assert cfg.attacks == ["pgd", "cw"]


def test_a_single_item_is_a_list_of_one_not_its_letters():
    assert from_dict(EvalConfig, apply_overrides({}, ["attacks=cw"])).attacks == ["cw"]
    assert from_dict(EvalConfig, apply_overrides({}, ["attack_levels=0,2"])).attack_levels == [0, 2]


def test_values_are_converted_to_their_field_types():
    cfg = from_dict(TrainConfig, apply_overrides({}, ["epochs=2", "max_steps=1e3", "betas=[0.5,0.9]", "compile=true"]))
    assert isinstance(cfg.epochs, float) and cfg.epochs == 2.0
    assert cfg.max_steps == 1000 and isinstance(cfg.max_steps, int)
    assert cfg.betas == (0.5, 0.9) and cfg.compile is True


@pytest.mark.parametrize("override,message", [
    ("train.epochs=abc", "train.epochs='abc': must be a number"),
    ("train.batch_size=2.5", "train.batch_size=2.5: must be an integer"),
    ("train.compile=maybe", "train.compile='maybe': must be true or false"),
    ("train.grad_clip=[1]", "train.grad_clip=[1]: must be a number, or null"),
    ("data.train_classes={a: 1}", "data.train_classes={'a': 1}: must be a list of strings, or null"),
])
def test_a_wrong_type_names_the_key_the_value_and_the_type(override, message):
    with pytest.raises(ValueError) as e:
        from_dict(FinetuneConfig, apply_overrides({}, [override]))
    assert str(e.value) == message


@pytest.mark.parametrize("override,near", [("trian.epochs=1", "'train'"), ("train.epoch=1", "'train.epochs'"),
                                           ("train.learning_rate=1", None)])
def test_an_unknown_key_suggests_the_nearest(override, near):
    with pytest.raises(ValueError, match="unknown config key") as e:
        from_dict(FinetuneConfig, apply_overrides({}, [override]))
    assert (f"did you mean {near}?" in str(e.value)) if near else "did you mean" not in str(e.value)


def test_help_lists_every_key_with_its_default_type_and_doc(capsys):
    assert main(["finetune", "--help"]) == 0
    out = capsys.readouterr().out
    for line in describe_keys(TrainConfig, "train"):
        assert line in out
    assert "train.ckpt_every = 0" in out and "steps between checkpoints" in out
    assert "options of --method hiro:" in out and "options.init_depth = 3" in out
    assert main(["evaluate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "eval.attacks = [pgd]" in out
    assert "data.train_classes = null" in out and "the zero-shot axis" in out  # a doc from the comment above


@pytest.mark.parametrize("argv", [["finetune", "--method", "tecoa", "train.epochs=abc"],
                                  ["evaluate", "--model", "a=b:c", "eval.stepz=2"],
                                  ["pretrain", "epochs=abc"],
                                  ["finetune", "--method", "hiro", "options.hita=maybe"],
                                  ["finetune", "--method", "tecoa", "options.epsilon=1"]])
def test_a_config_error_comes_before_torch_is_imported(argv):
    code = ("import sys; from hirobust.app.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(10 if 'torch' in sys.modules else rc)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1


def test_every_method_has_its_torch_free_config_registered():
    from hirobust.methods import CONFIGS, METHODS

    assert list(CONFIGS) == list(METHODS) and all(METHODS[k].Config is CONFIGS[k] for k in METHODS)
