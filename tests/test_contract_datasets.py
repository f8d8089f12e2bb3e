"""The dataset contract: every registered :class:`DatasetSpec` has class names, templates and trees that fit together,
positive image counts and a CLIP_benchmark name that round-trips. No image file is needed: the static facts are read
from the registry's JSON files and the shipped hierarchies; generated datasets are built small."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import pytest

from hirobust.data import DATASETS, dataset_forest
from hirobust.data.registry import (
    CLIP_BENCHMARK_ALIASES,
    CLIP_BENCHMARK_NAME,
    EVAL_IMAGES,
    SPECS,
    ZEROSHOT_DATASETS,
    canonical_dataset,
    classnames,
    clip_benchmark_prompt_names,
    templates,
)
from hirobust.hierarchy import available as shipped_hierarchies
from hirobust.hierarchy import load_forest, load_tree_file

STATIC = [name for name, spec in SPECS.items() if spec.classnames is not None]
GENERATED = [name for name, spec in SPECS.items() if spec.classnames is None]


def _check_names(names: list[str]) -> None:
    assert names, "no class names"
    assert all(isinstance(n, str) and n and n == n.strip() for n in names), names
    assert len(set(names)) == len(names), "class names must be unique"


def _check_templates(prompts: list[str]) -> None:
    assert prompts, "no templates"
    for t in prompts:
        assert t.count("{}") == 1 and t.count("{") == 1 and t.count("}") == 1, t
        assert "x" in t.format("x")


def test_the_registry_is_the_one_table():
    assert list(DATASETS) == list(SPECS) and all(callable(f) for f in DATASETS.values())
    assert all(name == spec.name for name, spec in SPECS.items())
    assert len(ZEROSHOT_DATASETS) == 15 and set(ZEROSHOT_DATASETS) <= set(SPECS)
    # every shipped hierarchy file belongs to a spec, and every spec's trees are shipped
    assert {spec.trees for spec in SPECS.values() if spec.trees} == set(shipped_hierarchies())


@pytest.mark.parametrize("kind", ["classnames", "templates"])
def test_every_data_file_is_used_by_a_spec(kind):
    files = {f.name[:-5] for f in resources.files("hirobust.data").joinpath(kind).iterdir() if f.name.endswith(".json")}
    used = {getattr(spec, kind) for spec in SPECS.values() if isinstance(getattr(spec, kind), str)}
    assert files == used


@pytest.mark.parametrize("name", STATIC)
def test_class_names_templates_and_trees_fit(name):
    spec = SPECS[name]
    names = classnames(name)
    _check_names(names)
    _check_templates(templates(name))
    assert spec.trees is not None, f"{name}: a dataset with fixed classes ships its hierarchy"
    assert load_tree_file(spec.trees)["classes"] == names, "the hierarchy file lists the classes in label order"
    forest = load_forest(spec.trees, classes=names)  # the runtime's loader: raises unless a tree covers every class
    assert len(forest) >= 1
    for tree in forest:
        assert tree.leaves == names and tree.num_levels >= 2, tree.name
    prompt = clip_benchmark_prompt_names(name)
    assert set(prompt) <= set(names), "prompt names rename existing classes only"


@pytest.mark.parametrize("name", GENERATED)
def test_generated_datasets_fit_too(name):
    ds = SPECS[name].loader("test", n_per_class=1)
    _check_names(ds.classnames)
    _check_templates(ds.templates)
    forest = dataset_forest(ds)
    assert all(tree.leaves == ds.classnames for tree in forest)
    assert SPECS[name].templates is None and SPECS[name].trees is None


@pytest.mark.parametrize("name", list(SPECS))
def test_counts_and_clip_benchmark_name(name):
    spec = SPECS[name]
    if spec.source is not None:
        assert name in EVAL_IMAGES and "test" in spec.source.splits and spec.source.layout
        assert all(isinstance(p, str) for p in spec.source.files("test"))
    if spec.eval_images is not None or name in EVAL_IMAGES:
        assert isinstance(spec.eval_images, int) and spec.eval_images > 0
        assert EVAL_IMAGES.get(name, spec.eval_images) == spec.eval_images
    assert canonical_dataset(name) == name
    if spec.clip_benchmark is not None:
        assert canonical_dataset(spec.clip_benchmark) == name
        assert CLIP_BENCHMARK_NAME.get(name, name) == spec.clip_benchmark
    else:
        assert name not in CLIP_BENCHMARK_NAME


def test_clip_benchmark_aliases_point_at_registered_datasets():
    assert CLIP_BENCHMARK_ALIASES and all(ours in SPECS for ours in CLIP_BENCHMARK_ALIASES.values())
    assert {ours: theirs for theirs, ours in CLIP_BENCHMARK_ALIASES.items()} == CLIP_BENCHMARK_NAME
    with pytest.raises(ValueError, match="use 'oxford-pets' instead"):
        canonical_dataset("vtab/pets")


def test_the_registry_imports_no_torch():
    """The command line checks dataset names (and CLIP_benchmark's spellings) before torch loads."""
    code = ("import sys; import hirobust.data, hirobust.data.registry as r; r.classnames('cifar10'); "
            "r.templates('caltech256'); r.canonical_dataset('pets'); assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
