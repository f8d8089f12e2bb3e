import importlib
import sys
from importlib import resources
from pathlib import Path

import pytest

from hirobust.data.imagenet import imagenet_classnames, imagenet_lemmas, imagenet_wnids
from hirobust.hierarchy import load_forest, load_tree


def _tool(name: str):
    """A build-time generator of ``tools/`` (outside the installed package)."""
    tools = str(Path(__file__).resolve().parents[1] / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)


def test_wnids_and_lemmas_from_timm():
    wnids, lemmas = imagenet_wnids(), imagenet_lemmas()
    assert len(wnids) == len(lemmas) == len(set(wnids)) == 1000
    assert wnids[0] == "n01440764" and lemmas[0].startswith("tench")
    assert wnids[278] == "n02119789" and lemmas[278].startswith("kit fox")


def test_shipped_file_covers_open_clips_class_names():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    forest = load_forest("imagenet")
    assert forest.leaves == list(imagenet_classnames())
    assert len(forest.leaves) == len(set(forest.leaves)) == len(IMAGENET_CLASSNAMES) == 1000
    # open_clip names two pairs of classes alike; the one whose WordNet lemma differs takes that lemma
    renamed = {i: (a, b) for i, (a, b) in enumerate(zip(IMAGENET_CLASSNAMES, forest.leaves)) if a != b}
    assert renamed == {744: ("missile", "projectile"), 836: ("sunglasses", "sunglass")}


def test_kit_fox_in_default_tree():
    tree = load_tree("imagenet")
    assert tree.name == "wordnet" and tree.num_levels == 6
    path = tree.path("kit fox")
    assert path[0] == "kit fox" and {"canine", "carnivore", "mammal"} <= set(path[1:])
    assert "canine" in tree.path("Chihuahua")  # the primary hypernym (dog -> canine), not "domestic animal"


def test_trees_distinct_and_valid():
    forest = load_forest("imagenet")  # load_forest validates every tree (Hierarchy.from_paths)
    assert [t.name for t in forest] == ["wordnet", "wordnet-1", "wordnet-2", "wordnet-3", "wordnet-4"]
    leaves = forest.leaves
    for i, a in enumerate(forest):
        assert a.num_levels == 6 and a.num_nodes(0) == 1000 and a.num_nodes(5) < a.num_nodes(1) < 1000
        assert not set(leaves) & {n for lvl in range(1, 6) for n in a.nodes(lvl)}
        for b in list(forest)[i + 1:]:
            assert any(a.path(leaf) != b.path(leaf) for leaf in leaves), (a.name, b.name)
    stats = _tool("imagenet_trees").forest_stats(forest)
    assert stats["wordnet"]["leaves_differing_from_first"] == 0
    assert all(0 < s["leaves_differing_from_first"] < 400 for n, s in stats.items() if n != "wordnet")
    # a name denotes one node per level: its parent is the same wherever it occurs
    for t in forest:
        for lvl in range(1, 5):
            parent = {}
            for leaf in leaves:
                p = t.path(leaf)
                assert parent.setdefault(p[lvl], p[lvl + 1]) == p[lvl + 1]


def _wordnet_available():
    try:
        from hirobust.hierarchy.wordnet import wordnet

        wordnet()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _wordnet_available(), reason="WordNet not installed (apt-get install wordnet-base)")
def test_shipped_file_is_rebuilt_exactly_from_wordnet():
    from hirobust.hierarchy.wordnet import wordnet

    tool = _tool("imagenet_trees")
    dumps, hypernyms, imagenet_tree_data = tool.dumps, tool.hypernyms, tool.imagenet_tree_data

    # WordNet's file order, independent of PYTHONHASHSEED (nltk's hypernyms() order is not)
    assert [s.name() for s in hypernyms(wordnet().synset("dog.n.01"))] == ["canine.n.02", "domestic_animal.n.01"]
    shipped = resources.files("hirobust.hierarchy").joinpath("data", "imagenet.json").read_text()
    assert dumps(imagenet_tree_data()) == shipped
