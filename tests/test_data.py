import gzip
import struct

import pytest
import torch

from hirobust.data import dataset_forest, get_dataset, make_synthetic, make_synthetic_mix
from hirobust.data.idx import read_idx
from hirobust.data.synthetic import mix_slots, visual_coherence


def _idx(shape, body: bytes) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


def test_idx_reader_raw_and_gzip(tmp_path):
    data = bytes(range(24))
    (tmp_path / "a").write_bytes(_idx((2, 3, 4), data))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx((2, 3, 4), data)))
    for name in ("a", "b.gz"):
        t = read_idx(tmp_path / name)
        assert t.shape == (2, 3, 4) and t.flatten().tolist() == list(range(24))


@pytest.mark.parametrize("content,match", [
    (_idx((2, 3, 4), bytes(20)), "truncated or padded idx body"),
    (b"\x01\x02\x03", "not an idx file"),
    (bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + bytes(4), "not unsigned byte"),
    (bytes([0, 0, 8, 3, 0, 0]), "truncated idx header"),
])
def test_corrupt_idx_files_are_named(tmp_path, content, match):
    p = tmp_path / "bad-idx"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=match) as e:
        read_idx(p)
    assert "bad-idx" in str(e.value)


def test_truncated_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(_idx((10, 10), bytes(100)))[:30])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(p)


def test_missing_data_root_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*apt-get install dataset-fashion-mnist"):
        get_dataset("fashion-mnist", "test", root=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="files missing"):
        get_dataset("fashion-mnist", "test", root=tmp_path)


def test_fashion_mnist_from_a_folder(tmp_path):
    imgs = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    for split, n in (("train", 5), ("t10k", 5)):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(_idx((n, 28, 28), imgs.numpy().tobytes()))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(_idx((n,), bytes([0, 1, 2, 3, 9])))
    ds = get_dataset("fashion-mnist", "test", root=tmp_path)
    assert ds.images.shape == (5, 3, 28, 28) and ds.labels.tolist() == [0, 1, 2, 3, 9]
    x, y = next(ds.batches(5))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x[:, 0], imgs.float() / 255)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet-22k'"):
        get_dataset("imagenet-22k")


def test_synthetic_is_seeded_and_hierarchical():
    a, b = make_synthetic("train", n_per_class=4), make_synthetic("train", n_per_class=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, make_synthetic("test", n_per_class=4).images)
    assert len(a.classnames) == 8 and len(a) == 32


def test_batches_resume_and_subset():
    ds = make_synthetic("train", n_per_class=4)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    full = [y for _, y in ds.batches(5, shuffle=True, generator=g(), drop_last=True)]
    tail = [y for _, y in ds.batches(5, shuffle=True, generator=g(), drop_last=True, start=2)]
    assert all(torch.equal(p, q) for p, q in zip(full[2:], tail)) and len(tail) == len(full) - 2
    sub = ds.seeded_subset(10, seed=1)
    assert len(sub) == 10 and torch.equal(sub.labels, ds.seeded_subset(10, seed=1).labels)


def _visual_path(i: int) -> list[str]:
    return [f"group {i // 3}", f"family {i // 9}", "order 0"]


def _moved(ds) -> list[str]:
    """Leaves whose label parent (level 1) is not their visual parent."""
    return [leaf for leaf, p in ds.hierarchy["paths"].items() if p[0] != _visual_path(int(leaf.split()[1]))[0]]


def test_synthetic_mix_is_seeded_and_only_the_labels_move():
    a, b = make_synthetic_mix("train", 0.5, n_per_class=4), make_synthetic_mix("train", 0.5, n_per_class=4)
    assert torch.equal(a.images, b.images) and a.hierarchy == b.hierarchy
    assert a.images.shape == (27 * 4, 3, 28, 28) and a.images.dtype == torch.uint8
    other_seed = make_synthetic_mix("train", 0.5, n_per_class=4, seed=1)
    assert not torch.equal(a.images, other_seed.images) and a.hierarchy != other_seed.hierarchy
    assert not torch.equal(a.images, make_synthetic_mix("test", 0.5, n_per_class=4).images)
    mix0 = make_synthetic_mix("train", 0.0, n_per_class=4)  # same images and leaf labels at every mix
    assert torch.equal(a.images, mix0.images) and torch.equal(a.labels, mix0.labels)
    assert a.hierarchy != mix0.hierarchy


def test_synthetic_mix0_is_the_visual_tree_and_mix1_moves_most_leaves():
    mix0 = make_synthetic_mix("test", 0.0, n_per_class=1)
    assert mix0.classnames == [f"item {i}" for i in range(27)]
    assert mix0.hierarchy["paths"] == {f"item {i}": _visual_path(i) for i in range(27)}
    for seed in range(3):
        assert len(_moved(make_synthetic_mix("test", 1.0, n_per_class=1, seed=seed))) >= 22  # of 27


def test_mix_slots_permute_and_nest():
    for mix, n_moved in ((0.0, 0), (0.04, 2), (0.3, 8), (0.5, 14), (1.0, 27)):  # one leaf alone cannot move: 2
        s = mix_slots(27, mix, seed=2)
        assert sorted(s.tolist()) == list(range(27)) and int((s != torch.arange(27)).sum()) == n_moved
    small, big = (set(torch.nonzero(mix_slots(27, m, seed=2) != torch.arange(27)).flatten().tolist()) for m in (.3, .6))
    assert small <= big


@pytest.mark.parametrize("mix", ["0", "0.1", "0.5", "0.9", "1"])
def test_synthetic_mix_forest_is_balanced_at_every_mix(mix):
    ds = get_dataset(f"synthetic-mix{mix}", "val", root=None)
    assert ds.name == f"synthetic-mix{mix}" and len(ds) == 27 * 100
    forest = dataset_forest(ds)
    assert len(forest) == 1 and forest.leaves == ds.classnames
    tree = forest[0]
    assert tree.name == "synthetic-mix"  # no "." (tree names become module keys)
    assert tree.num_levels == 4 and [tree.num_nodes(lvl) for lvl in range(4)] == [27, 9, 3, 1]
    for lvl, size in ((1, 3), (2, 9), (3, 27)):
        assert torch.bincount(tree.ancestor_index(lvl)).tolist() == [size] * (27 // size)
    words = [{n.split()[0] for n in tree.nodes(lvl)} for lvl in range(4)]
    assert words == [{"item"}, {"group"}, {"family"}, {"order"}]  # every level reads differently in a prompt
    assert ds.templates[0].format(tree.nodes(1)[0]) == f"a photo of a {tree.nodes(1)[0]}."


def test_synthetic_mix_split_sizes():
    sizes = {split: get_dataset("synthetic-mix0.5", split).images.shape for split in ("train", "val", "test")}
    assert sizes == {"train": (8100, 3, 28, 28), "val": (2700, 3, 28, 28), "test": (2700, 3, 28, 28)}


def test_visual_coherence_falls_with_mix():
    ratios = [visual_coherence(get_dataset(f"synthetic-mix{m}", "test"), level=1) for m in ("0", "0.5", "1")]
    assert ratios[0] > 1.3 and ratios[0] > ratios[1] > ratios[2] and abs(ratios[2] - 1) < 0.1, ratios
    with pytest.raises(ValueError, match="no coherence"):
        visual_coherence(get_dataset("synthetic-mix0", "test", n_per_class=2), level=3)  # one root


@pytest.mark.parametrize("name,match", [
    ("synthetic-mix2", r"mix must be in \[0, 1\]"), ("synthetic-mix1.5", r"mix must be in \[0, 1\]"),
    ("synthetic-mixabc", "malformed"), ("synthetic-mix", "malformed"), ("synthetic-mix-0.5", "malformed"),
    ("synthetic-mix0.5x", "malformed"), ("synthetic-mixnan", "malformed"),
])
def test_bad_synthetic_mix_names(name, match):
    with pytest.raises(ValueError, match=match):
        get_dataset(name, "test")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_smaller_seeded_subset_lies_inside_a_larger_one(seed):
    """AutoAttack's images are found inside PGD's (same total and seed), so their per-image results pair up."""
    from hirobust.data.base import nested_positions, seeded_indices

    small, large = seeded_indices(1000, 40, seed), seeded_indices(1000, 300, seed)
    pos = nested_positions(1000, 40, 300, seed)
    assert torch.equal(large[pos], small) and torch.equal(small, small.sort().values)
    assert torch.equal(nested_positions(50, 10, None, seed), seeded_indices(50, 10, seed))  # None: all samples
    assert torch.equal(seeded_indices(50, 10, seed), seeded_indices(50, 10, seed))
    with pytest.raises(ValueError, match="does not lie inside"):
        nested_positions(1000, 301, 300, seed)


def test_file_images_keep_every_path_and_label_compactly_and_pickle(tmp_path):
    """The compact file list (no Python object per image, so forked loader workers share it) reads back every path,
    odd characters included, with its label, opens the right file, and survives pickling (spawned workers)."""
    import pickle

    from PIL import Image

    from hirobust.data.base import FileImages

    names = ["a.png", "café ü.png", "x y/z.png"]
    samples = []
    for i, n in enumerate(names):
        f = tmp_path / n
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (i * 100, 0, 0)).save(f)
        samples.append((f, i + 3))
    ds = FileImages(samples)
    assert len(ds) == 3 and ds.samples == samples and ds.labels.tolist() == [3, 4, 5]
    back = pickle.loads(pickle.dumps(ds))
    img, label = back[2]
    assert label == 5 and img.getpixel((0, 0)) == (200, 0, 0)
    assert [type(x).__name__ for x in vars(ds).values() if x is not None] == ["ndarray"] * 3
