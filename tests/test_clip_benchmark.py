"""CLIP_benchmark conformance: prompt templates and the class names put in the prompts are CLIP_benchmark's own
(read from the installed ``clip_benchmark`` package's data files, a test dependency); Caltech-101 keeps its
background class by default, as CLIP_benchmark does."""

import importlib.util
import json
from pathlib import Path

import pytest

from hirobust.data.registry import (
    CLIP_BENCHMARK_ALIASES,
    CLIP_BENCHMARK_NAME,
    classnames,
    clip_benchmark_prompt_names,
    templates,
)


def _clip_benchmark_file(name: str):
    spec = importlib.util.find_spec("clip_benchmark")  # located, not imported (it would import its dependencies)
    assert spec is not None, "the test dependency clip_benchmark is missing: pip install --no-deps clip-benchmark"
    return json.loads((Path(spec.submodule_search_locations[0]) / "datasets" / name).read_text())


THEIRS = ["cifar10", "cifar100", "stl10", "imagenet1k", "caltech101", "pets", "flowers", "fgvc_aircraft", "cars",
          "sun397", "food101", "eurosat", "dtd", "pcam"]


@pytest.mark.parametrize("theirs", THEIRS)
def test_templates_are_clip_benchmarks(theirs):
    theirs_templates = _clip_benchmark_file("en_zeroshot_classification_templates.json")
    ours = CLIP_BENCHMARK_ALIASES.get(theirs, theirs)
    assert CLIP_BENCHMARK_NAME.get(ours, ours) == theirs
    expected = theirs_templates.get(theirs, theirs_templates["imagenet1k"])  # CLIP_benchmark's fallback
    assert templates(ours) == [t.replace("{c}", "{}") for t in expected]


@pytest.mark.parametrize("theirs", ["imagenet1k", "pets", "flowers", "eurosat", "pcam", "caltech101"])
def test_prompted_class_names_are_clip_benchmarks(theirs):
    expected = _clip_benchmark_file("en_classnames.json")[theirs]
    ours = CLIP_BENCHMARK_ALIASES.get(theirs, theirs)
    prompt = clip_benchmark_prompt_names(ours)
    prompted = [prompt.get(c, c) for c in classnames(ours)]
    if theirs == "caltech101":  # the background class is added by the loader (data.caltech101_background=true)
        from hirobust.data.zeroshot import BACKGROUND

        prompted = [BACKGROUND, *prompted]
    assert prompted == expected


def test_cifar100_prompts_keep_torchvisions_underscores_as_clip_benchmark_does():
    # CLIP_benchmark prompts CIFAR-100 with torchvision's raw class names (no entry in its en_classnames.json)
    assert "cifar100" not in _clip_benchmark_file("en_classnames.json")
    prompt = clip_benchmark_prompt_names("cifar100")
    assert prompt["aquarium fish"] == "aquarium_fish" and len(prompt) == 9
    assert all(" " not in v for v in prompt.values())


def test_unique_names_remain_an_option():
    from hirobust.app.schema import DataConfig

    assert DataConfig().prompt_names == "clip_benchmark" and DataConfig(prompt_names="unique").prompt_names == "unique"
    with pytest.raises(ValueError, match="data.prompt_names='x'"):
        DataConfig(prompt_names="x")
