import json
from pathlib import Path

import pytest
import torch

from hirobust.hierarchy import Forest, Hierarchy, load_forest, load_tree

PATHS = {"kit fox": ["fox", "canine", "mammal"], "red fox": ["fox", "canine", "mammal"],
         "wolf": ["canine", "mammal"], "tabby": ["cat", "feline", "mammal"], "trout": ["fish"]}


def test_levels_padding_and_indices():
    h = Hierarchy.from_paths(PATHS)
    assert h.num_levels == 4 and h.leaves == list(PATHS)
    assert h.nodes(1) == ["fox", "canine", "cat", "fish"]  # wolf's short path repeats its top node
    assert h.path("wolf") == ["wolf", "canine", "mammal", "mammal"]
    assert h.path("trout") == ["trout", "fish", "fish", "fish"]
    assert h.ancestor_index(1).tolist() == [0, 0, 1, 2, 3]
    assert h.nodes(3) == ["mammal", "fish"]
    assert h.ancestor_index(3).tolist() == [0, 0, 0, 0, 1]
    # levels count from the leaf: wolf's 1st ancestor "canine" is a level-1 node whose parent is "mammal",
    # while the foxes' 2nd ancestor "canine" is the level-2 node of that name
    n2 = h.nodes(2)
    assert n2 == ["canine", "mammal", "feline", "fish"]
    assert h.parent_index(1).tolist() == [n2.index("canine"), n2.index("mammal"), n2.index("feline"), n2.index("fish")]
    assert torch.equal(h.labels(torch.tensor([4, 0]), 3), torch.tensor([1, 0]))


def test_json_round_trip(tmp_path):
    h = Hierarchy.from_paths(PATHS, name="animals")
    again = Hierarchy.from_json(json.dumps(h.to_json()))
    assert again == h and again.name == "animals"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(h.to_json()))
    assert Hierarchy.from_json(p) == h and load_tree(p) == h


def test_tree_distance():
    h = Hierarchy.from_paths(PATHS)
    d = h.tree_distance(0)
    i = h.leaves.index
    # level-wise: the foxes' level-2 "canine" and wolf's level-1 "canine" are different nodes (see above)
    assert d[i("kit fox"), i("red fox")] == 1 and d[i("kit fox"), i("wolf")] == 3
    assert d[i("kit fox"), i("tabby")] == 3 and d[i("kit fox"), i("trout")] == 4 and d[0, 0] == 0


@pytest.mark.parametrize("paths,leaves,match", [
    ({"a": ["x", "a"]}, None, "cycle at node 'a'"),
    ({"a": ["x", "y", "x"]}, None, "cycle at node 'x'"),
    ({"a": ["x"], "b": ["y"]}, ["a"], "unknown leaf 'b'"),
    ({"a": ["x"]}, ["a", "a"], "duplicate leaf 'a'"),
    ({"a": ["x"]}, ["a", "b"], "leaf 'b' has no path"),
    ({"a": ["x", "r1"], "b": ["x", "r2"]}, None, "node 'x' at level 1 has two parents"),
    ({"a": ["b"], "b": ["x"]}, None, "leaf 'b' is also used as an inner node"),
    ({"a": ["x", ""]}, None, "empty node name"),
])
def test_invalid_hierarchies_name_the_node(paths, leaves, match):
    with pytest.raises(ValueError, match=match):
        Hierarchy.from_paths(paths, leaves=leaves)


def test_too_many_ancestors_for_num_levels():
    with pytest.raises(ValueError, match="leaf 'kit fox' has a path of 3 ancestors"):
        Hierarchy.from_paths(PATHS, num_levels=3)


def test_forest_needs_same_leaves():
    a = Hierarchy.from_paths({"a": ["x"], "b": ["x"]}, name="t1")
    b = Hierarchy.from_paths({"a": ["x"], "c": ["x"]}, name="t2")
    with pytest.raises(ValueError, match="other leaves"):
        Forest([a, b])


def test_shipped_fashion_mnist_has_three_distinct_trees():
    forest = load_forest("fashion-mnist")
    assert [t.name for t in forest] == ["wordnet", "garment-type", "season"]
    assert all(t.num_levels == 3 and len(t.leaves) == 10 for t in forest)
    groupings = {tuple(t.ancestor_index(1).tolist()) for t in forest}
    assert len(groupings) == 3  # three different groupings of the classes
    assert load_tree("fashion-mnist").name == "wordnet"


def test_cifar100_coarse_classes():
    t = load_tree("cifar100")
    assert len(t.leaves) == 100 and t.num_nodes(1) == 20
    counts = torch.bincount(t.ancestor_index(1))
    assert counts.tolist() == [5] * 20  # the official 20 superclasses have 5 classes each
    assert t.path("maple tree")[1] == "tree" and t.path("whale")[1] == "aquatic mammal"


def test_tree_must_cover_dataset_classes():
    with pytest.raises(ValueError, match="does not cover class 'kimono'"):
        load_forest("fashion-mnist", classes=["t-shirt", "kimono"])


def test_unknown_shipped_hierarchy():
    with pytest.raises(ValueError, match="no shipped hierarchy for 'nope'"):
        load_forest("nope")


def _wordnet_available():
    try:
        from hirobust.hierarchy.wordnet import wordnet

        wordnet()
        return True
    except RuntimeError:
        return False


@pytest.mark.skipif(not _wordnet_available(), reason="WordNet not installed (apt-get install wordnet-base)")
def test_fashion_mnist_wordnet_tree_is_derived_from_wordnet():
    from hirobust.hierarchy.wordnet import tree_from_cuts

    synsets = {"t-shirt": "jersey.n.03", "trouser": "trouser.n.01", "pullover": "pullover.n.01",
               "dress": "dress.n.01", "coat": "coat.n.01", "sandal": "sandal.n.01", "shirt": "shirt.n.01",
               "sneaker": "gym_shoe.n.01", "bag": "bag.n.01", "ankle boot": "boot.n.01"}
    cuts = [["garment.n.01", "woman's_clothing.n.01", "shoe.n.01", "boot.n.01", "container.n.01"],
            ["clothing.n.01", "footwear.n.02", "container.n.01"]]
    derived = tree_from_cuts(synsets, cuts)
    shipped = json.loads((Path(__import__("hirobust").__file__).parent / "hierarchy/data/fashion-mnist.json")
                         .read_text())["trees"]["wordnet"]["paths"]
    assert derived == shipped
