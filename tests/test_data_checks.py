"""A copy of a zero-shot dataset is checked before any work (data/check.py), on every dataset's real on-disk format
(fabricated small, tests/fabricate.py): complete copies load; md5 sums are verified once per copy; a missing
annotation target, a damaged image and a bad checksum end as one-line reasons that name the file."""

import pytest
import torch
from fabricate import as_official, eurosat, fabricate_all, pets, stl10

from hirobust.data import available, get_dataset
from hirobust.data.registry import ZEROSHOT_DATASETS


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, fabricate_all(root)


def test_every_fabricated_dataset_loads_complete_through_torchvision(made, monkeypatch):
    root, facts = made
    as_official(monkeypatch, facts)
    assert sorted(facts) == sorted(ZEROSHOT_DATASETS)
    for name in ZEROSHOT_DATASETS:
        assert available(name, root)[0], available(name, root)[1]
        ds = get_dataset(name, root=root, image_size=16, num_workers=0)
        assert len(ds) == facts[name]["count"] and ds.partial is None and ds.damaged == [], name
        x, y = ds.dataset[len(ds) - 1]
        assert x.shape == (3, 16, 16) and int(y) == int(ds.labels[-1]), name


def test_md5_sums_are_verified_once_per_copy(tmp_path, monkeypatch):
    import torchvision.datasets.utils as U

    facts = {"stl10": stl10(tmp_path)}
    as_official(monkeypatch, facts)
    real, calls = U.check_integrity, []
    monkeypatch.setattr(U, "check_integrity", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    get_dataset("stl10", root=tmp_path, image_size=16)
    assert len(calls) == 5  # torchvision's md5 of the 5 binaries, once
    calls.clear()
    get_dataset("stl10", root=tmp_path, image_size=16)
    assert calls == []  # same sizes and times: presence only
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").write_bytes(b"damaged")  # a changed copy is verified again
    with pytest.raises(FileNotFoundError, match=r"unlabeled_X\.bin' is missing or fails its md5 check"):
        get_dataset("stl10", root=tmp_path, image_size=16)


def test_a_missing_annotation_target_is_named_and_partial_only_when_allowed(tmp_path, monkeypatch):
    as_official(monkeypatch, {"oxford-pets": pets(tmp_path)})
    (tmp_path / "oxford-iiit-pet" / "images" / "Bengal_1.jpg").unlink()
    ok, _ = available("oxford-pets", tmp_path)  # the folders are there: the cheap check passes
    with pytest.raises(FileNotFoundError, match=r"1 of the 37 images .* missing \('oxford-iiit-pet/images/Bengal_1"
                                                r"\.jpg'\).*allow_partial"):
        get_dataset("oxford-pets", root=tmp_path, image_size=16)
    ds = get_dataset("oxford-pets", root=tmp_path, image_size=16, allow_partial=True)
    assert ok and len(ds) == 36 and "Bengal_1.jpg" in ds.partial and "1 of its 37 classes" in ds.partial


def test_a_damaged_image_is_counted_and_left_out_below_the_limit_and_refused_above(tmp_path, monkeypatch):
    as_official(monkeypatch, {"eurosat": eurosat(tmp_path, per_class=2)})
    f = tmp_path / "eurosat" / "2750" / "Forest" / "Forest_2.jpg"
    f.write_bytes(f.read_bytes()[:60])  # a truncated JPEG
    with pytest.raises(FileNotFoundError, match=r"damaged: 1 of 20 images do not decode \(5\.00%.*Forest_2\.jpg"):
        get_dataset("eurosat", root=tmp_path, image_size=16)
    ds = get_dataset("eurosat", root=tmp_path, image_size=16, max_damaged=0.1)
    assert len(ds) == 19 and ds.damaged == ["eurosat/2750/Forest/Forest_2.jpg"]
    assert torch.stack([ds.dataset[i][0] for i in range(len(ds))]).shape == (19, 3, 16, 16)  # every one decodes
