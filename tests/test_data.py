import gzip
import struct

import pytest
import torch

from hirobust.data import get_dataset, make_synthetic
from hirobust.data.idx import read_idx


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
