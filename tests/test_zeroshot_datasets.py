"""The 15 zero-shot evaluation datasets: registry, class names, templates, shipped hierarchies, folder loaders."""

from __future__ import annotations

import importlib
import json
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image

from hirobust.data import DATASETS, ZEROSHOT_DATASETS, available, get_dataset
from hirobust.data.imagenet import imagenet_wnids
from hirobust.data.registry import classnames, templates
from hirobust.hierarchy import available as shipped_hierarchies
from hirobust.hierarchy import load_forest

EXPECTED_COUNTS = {
    "cifar10": 10, "cifar100": 100, "stl10": 10, "imagenet": 1000, "caltech101": 101, "caltech256": 257,
    "oxford-pets": 37, "flowers102": 102, "fgvc-aircraft": 100, "stanford-cars": 196, "sun397": 397, "food101": 101,
    "eurosat": 10, "dtd": 47, "pcam": 2,
}
NEEDS_FILE_FROM_ELSEWHERE = {"imagenet"}  # imagenet.json is written by tools/imagenet_trees.py


def _tool(name: str):
    """A build-time generator of ``tools/`` (outside the installed package)."""
    tools = str(Path(__file__).resolve().parents[1] / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)


def _has_hierarchy(name: str) -> bool:
    return name in shipped_hierarchies()


def test_registry_lists_the_15_datasets():
    assert list(ZEROSHOT_DATASETS) == list(EXPECTED_COUNTS)
    for name in EXPECTED_COUNTS:
        assert name in DATASETS


@pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
def test_class_counts_and_templates(name):
    names = classnames(name)
    assert len(names) == EXPECTED_COUNTS[name]
    assert len(set(names)) == len(names), "class names must be unique"
    assert all(n == n.strip() and n for n in names)
    prompts = templates(name)
    assert prompts
    for t in prompts:
        assert t.count("{}") == 1 and t.count("{") == 1 and t.count("}") == 1, t
        assert "x" in t.format("x")


@pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
def test_shipped_hierarchy_covers_exactly_the_registry_classes(name):
    if name in NEEDS_FILE_FROM_ELSEWHERE and not _has_hierarchy(name):
        pytest.skip(f"{name}.json is not there yet")
    names = classnames(name)  # the registry's list, not the file's own
    data = json.loads(resources.files("hirobust.hierarchy").joinpath("data", f"{name}.json").read_text())
    assert data["classes"] == names
    forest = load_forest(name, classes=names)
    leaf_set = set(names)
    for tree in forest:
        assert tree.leaves == names
        assert tree.num_levels >= 2
        for level in range(1, tree.num_levels):
            nodes = tree.nodes(level)
            assert not leaf_set & set(nodes), f"{name}/{tree.name}: a node is named like a leaf"
            for node in nodes:  # prompt-usable: plain text, no WordNet ids or underscores
                assert node.strip() == node and node and "_" not in node and ".n." not in node, node
                assert "{" not in node and "}" not in node, node
    if name not in NEEDS_FILE_FROM_ELSEWHERE:
        for tree_spec in data["trees"].values():
            assert tree_spec.get("description"), f"{name}: every tree documents L and its source"


def test_cifar100_keeps_the_official_coarse_tree_as_default():
    data = json.loads(resources.files("hirobust.hierarchy").joinpath("data", "cifar100.json").read_text())
    assert data["default"] == "coarse" and {"coarse", "wordnet"} <= set(data["trees"])
    forest = load_forest("cifar100", classes=classnames("cifar100"))
    assert forest["coarse"].num_nodes(1) == 20
    deep = forest["wordnet"]
    assert deep.num_levels == 4
    # sense checks: the animal, not the computer device / the fish, not the beam of light
    assert deep.path("mouse")[1:3] == ["mammal", "animal"]
    assert deep.path("ray")[1] == "fish" and deep.path("whale")[1] == "mammal"


def test_fgvc_aircraft_follows_variant_family_manufacturer():
    forest = load_forest("fgvc-aircraft", classes=classnames("fgvc-aircraft"))
    t = forest["manufacturer"]
    assert [t.num_nodes(level) for level in range(3)] == [100, 70, 30]
    assert t.path("737-800") == ["737-800", "Boeing 737", "Boeing"]
    assert t.path("A319")[1:] == ["Airbus A320 family", "Airbus"]
    assert t.path("MD-87")[2] == "McDonnell Douglas" and t.path("DC-3")[2] == "Douglas Aircraft Company"


def test_stanford_cars_make_and_body_type():
    forest = load_forest("stanford-cars", classes=classnames("stanford-cars"))
    assert forest["make"].path("Aston Martin V8 Vantage Coupe 2012")[1:] == ["Aston Martin", "British car"]
    assert forest["body-type"].path("Ford F-150 Regular Cab 2012")[1:] == ["pickup truck", "utility vehicle"]
    assert forest["body-type"].path("Acura TL Type-S 2008")[1] == "sedan"


# ------------------------------------------------------------------------------------------------- folder loaders
def _image(path, size=(37, 23), color=(200, 30, 90), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)


def test_fake_imagenet_folder_loads_with_canonical_labels(tmp_path):
    wnids = imagenet_wnids()
    assert wnids[0] == "n01440764" and len(set(wnids)) == 1000
    chosen = {wnids[0]: 0, wnids[417]: 417, wnids[999]: 999}
    for i, wnid in enumerate(chosen):
        _image(tmp_path / "val" / wnid / f"ILSVRC2012_val_{i:08d}.JPEG", fmt="JPEG")
        _image(tmp_path / "val" / wnid / f"extra_{i}.png", size=(20, 50), color=(0, 0, 0))
    (tmp_path / "val" / "not_a_wnid").mkdir()  # ignored
    ok, why = available("imagenet", tmp_path)
    assert not ok and "holds 3 of 1000 ImageNet class folders" in why  # partial: refused unless allowed
    assert available("imagenet", tmp_path, allow_partial=True)[0]
    ds = get_dataset("imagenet", "test", root=tmp_path, image_size=32, allow_partial=True)
    assert "3 of 1000" in ds.partial
    assert len(ds.classnames) == 1000 and ds.hierarchy == "imagenet"
    assert sorted(ds.labels.tolist()) == [0, 0, 417, 417, 999, 999]
    for i in range(len(ds)):
        x, y = ds.dataset[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert y == int(ds.labels[i])
    x, y = next(ds.batches(4))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == ds.labels[:4].tolist()
    assert ds.dataset.ignored == ["not_a_wnid"]


def test_missing_imagenet_folder_names_the_layout(tmp_path):
    ok, why = available("imagenet", tmp_path / "nope")
    assert not ok and "val/<wnid>/*.JPEG" in why
    with pytest.raises(FileNotFoundError, match=r"val/<wnid>/\*\.JPEG"):
        get_dataset("imagenet", root=tmp_path / "nope")
    (tmp_path / "val" / "n99999999").mkdir(parents=True)  # a folder, but no ImageNet class in it
    with pytest.raises(FileNotFoundError, match="no ImageNet wnid folder"):
        get_dataset("imagenet", root=tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "stl10", "caltech101", "flowers102", "eurosat", "pcam"])
def test_missing_downloadable_dataset_says_how_to_download(name, tmp_path):
    ok, why = available(name, tmp_path)
    assert not ok
    with pytest.raises((FileNotFoundError, ImportError), match="download=True|pip install"):
        get_dataset(name, root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing created when nothing was downloaded


@pytest.mark.parametrize("name", ["stanford-cars", "sun397"])
def test_missing_manual_dataset_names_the_files(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="Expected layout.*cannot download"):
        get_dataset(name, root=tmp_path)


def test_unknown_split_and_dataset():
    with pytest.raises(ValueError, match="no split 'train'"):
        get_dataset("caltech101", "train")
    assert available("no-such-set")[0] is False


def _official(monkeypatch, name, n):
    """The fabricated copy's size as the official split's (the completeness check compares the two)."""
    from dataclasses import replace

    from hirobust.data.registry import SPECS

    monkeypatch.setitem(SPECS, name, replace(SPECS[name], eval_images=n))


def test_fake_dtd_through_torchvision(tmp_path, monkeypatch):
    """The torchvision wiring of one dataset end to end (DTD: no checksum on its files)."""
    _official(monkeypatch, "dtd", 47)
    names = classnames("dtd")
    lines = []
    for i, c in enumerate(names):
        _image(tmp_path / "dtd" / "dtd" / "images" / c / f"{c}_0001.jpg", color=(i * 5, 100, 200))
        lines.append(f"{c}/{c}_0001.jpg")
    (tmp_path / "dtd" / "dtd" / "labels").mkdir()
    (tmp_path / "dtd" / "dtd" / "labels" / "test1.txt").write_text("\n".join(reversed(lines)) + "\n")
    ds = get_dataset("dtd", root=tmp_path, image_size=24)
    assert ds.labels.tolist() == list(range(46, -1, -1))
    x, y = ds.dataset[3]
    assert x.shape == (3, 24, 24) and y == 43 and 0 <= float(x.min()) <= float(x.max()) <= 1


def test_shipped_files_match_the_generator():
    pytest.importorskip("nltk")
    zeroshot_trees = _tool("zeroshot_trees")

    try:
        from hirobust.hierarchy.wordnet import wordnet

        wordnet()
    except RuntimeError as e:  # no WordNet on this machine
        pytest.skip(str(e))
    assert zeroshot_trees.main(["--check"]) == 0


@pytest.mark.parametrize("background", [True, False])
def test_fake_caltech101_with_and_without_clip_benchmarks_background_class(tmp_path, background, monkeypatch):
    """CLIP_benchmark keeps BACKGROUND_Google as class 0 ("background", 102 classes; the default); torchvision's
    Caltech101 drops it (101 classes; data.caltech101_background=false)."""
    from hirobust.data import dataset_forest
    from hirobust.data.zeroshot import CALTECH101_BACKGROUND_IMAGES

    # the official count includes the background images; without them the check expects that many fewer
    _official(monkeypatch, "caltech101", 102 if background else 101 + CALTECH101_BACKGROUND_IMAGES)

    top = tmp_path / "caltech101" / "101_ObjectCategories"
    folders = ["BACKGROUND_Google", *(f"c{i:03d}" for i in range(101))]  # sorted: the background first
    for i, f in enumerate(folders):
        _image(top / f / "image_0001.jpg", color=(i, 2 * i, 50))
    ds = get_dataset("caltech101", root=tmp_path, image_size=24, caltech101_background=background)
    if background:
        assert ds.classnames == ["background", *classnames("caltech101")] and len(ds) == 102
        assert ds.labels.tolist() == list(range(102))
        x, y = ds.dataset[0]
        assert y == 0 and x.shape == (3, 24, 24) and abs(float(x[2].mean()) - 50 / 255) < 0.02  # the background
        forest = dataset_forest(ds)
        tree = forest[0]
        assert tree.nodes(0)[0] == "background" and tree.labels(torch.tensor([0, 1]), 1).tolist()[0] != \
            tree.labels(torch.tensor([0, 1]), 1).tolist()[1]  # a branch of its own
    else:
        assert ds.classnames == classnames("caltech101") and len(ds) == 101


def test_caltech101_without_the_background_folder_says_what_to_do(tmp_path):
    top = tmp_path / "caltech101" / "101_ObjectCategories"
    for i in range(101):
        _image(top / f"c{i:03d}" / "image_0001.jpg")
    with pytest.raises(FileNotFoundError, match="caltech101_background=false"):
        get_dataset("caltech101", root=tmp_path, image_size=24)
