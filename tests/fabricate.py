"""Every zero-shot dataset's on-disk format, fabricated small (a few images per class) in a temp folder: CIFAR
pickles, STL-10 binaries, ImageNet wnid folders, Caltech folders, Pets / Aircraft / DTD / Food-101 annotation files,
Flowers .mat files, the Cars devkit, SUN397's tree, EuroSAT's folders, PCAM's HDF5. torchvision reads them exactly
as it reads the real ones; the md5 sums torchvision checks and the official split sizes hirobust checks are set to
the fabricated copy's (:func:`as_official`), so a complete fabricated copy passes every check and a damaged or
partial one fails them as a real one would.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from hirobust.data.registry import SPECS
from hirobust.data.zeroshot import imagenet_wnids


def _jpg(path: Path, i: int, size=(12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (i * 37 % 256, i * 91 % 256, 120)).save(path, format="JPEG")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _names(name: str) -> list[str]:
    return SPECS[name].class_names()


def _raw(c: str) -> str:
    return c.replace(" ", "_")


def cifar(root: Path, name: str, per_class: int = 1) -> dict:
    n_cls = 10 if name == "cifar10" else 100
    folder, meta, key, lab = (("cifar-10-batches-py", "batches.meta", "label_names", "labels") if name == "cifar10"
                              else ("cifar-100-python", "meta", "fine_label_names", "fine_labels"))
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    y = [c for c in range(n_cls) for _ in range(per_class)]
    batch = {"data": np.random.default_rng(0).integers(0, 255, (len(y), 3072), dtype=np.uint8), lab: y}
    files = ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["test", "train"]
    for f in files:
        (d / f).write_bytes(pickle.dumps(batch))
    (d / meta).write_bytes(pickle.dumps({key: [_raw(c) for c in _names(name)]}))
    return {"count": len(y), "md5": {f: _md5(d / f) for f in [*files, meta]}}


def stl10(root: Path, per_class: int = 1) -> dict:
    d = root / "stl10_binary"
    d.mkdir(parents=True, exist_ok=True)
    y = np.array([c + 1 for c in range(10) for _ in range(per_class)], dtype=np.uint8)
    x = np.random.default_rng(1).integers(0, 255, (len(y), 3, 96, 96), dtype=np.uint8)
    for split in ("test", "train"):
        x.tofile(d / f"{split}_X.bin")
        y.tofile(d / f"{split}_y.bin")
    x[:2].tofile(d / "unlabeled_X.bin")
    (d / "class_names.txt").write_text("\n".join(_names("stl10")) + "\n")
    return {"count": len(y), "md5": {f.name: _md5(f) for f in d.glob("*.bin")}}


def imagenet(root: Path, per_class: int = 1, splits=("val", "train")) -> dict:
    for split in splits:
        for i, w in enumerate(imagenet_wnids()):
            for k in range(per_class):
                _jpg(root / split / w / f"{split}_{i:04d}_{k}.JPEG", i)
    return {"count": 1000 * per_class}


def caltech101(root: Path) -> dict:
    top = root / "caltech101" / "101_ObjectCategories"
    for i, f in enumerate(["BACKGROUND_Google", *(f"c{i:03d}" for i in range(101))]):
        _jpg(top / f / "image_0001.jpg", i)
    return {"count": 102}


def caltech256(root: Path) -> dict:
    top = root / "caltech256" / "256_ObjectCategories"
    for i in range(257):
        _jpg(top / f"{i + 1:03d}.c{i}" / f"{i + 1:03d}_0001.jpg", i)
    return {"count": 257}


def pets(root: Path) -> dict:
    base = root / "oxford-iiit-pet"
    lines = []
    for i, c in enumerate(_names("oxford-pets")):
        image_id = f"{_raw(c)}_1"
        _jpg(base / "images" / f"{image_id}.jpg", i)
        lines.append(f"{image_id} {i + 1} 1 1")
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("test", "trainval"):
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return {"count": len(lines)}


def flowers102(root: Path) -> dict:
    from scipy.io import savemat

    base = root / "flowers-102"
    for i in range(102):
        _jpg(base / "jpg" / f"image_{i + 1:05d}.jpg", i)
    savemat(base / "imagelabels.mat", {"labels": np.arange(1, 103)})
    ids = np.arange(1, 103)
    savemat(base / "setid.mat", {"trnid": ids, "valid": ids, "tstid": ids})
    return {"count": 102, "md5": {f: _md5(base / f) for f in ("imagelabels.mat", "setid.mat")}}


def aircraft(root: Path) -> dict:
    data = root / "fgvc-aircraft-2013b" / "data"
    names = _names("fgvc-aircraft")
    lines = []
    for i, c in enumerate(names):
        _jpg(data / "images" / f"{1000000 + i}.jpg", i)
        lines.append(f"{1000000 + i} {c}")
    (data / "variants.txt").write_text("\n".join(names) + "\n")
    (data / "images_variant_test.txt").write_text("\n".join(lines) + "\n")
    return {"count": len(lines)}


def cars(root: Path) -> dict:
    from scipy.io import savemat

    base = root / "stanford_cars"
    names = _names("stanford-cars")
    rows = []
    for i in range(len(names)):
        _jpg(base / "cars_test" / f"{i + 1:05d}.jpg", i)
        rows.append((f"{i + 1:05d}.jpg", i + 1))
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(names, dtype=object)})
    annos = np.array(rows, dtype=[("fname", object), ("class", object)])
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": annos})
    return {"count": len(rows)}


def sun397(root: Path) -> dict:
    base = root / "SUN397"
    names = _names("sun397")
    lines = []
    for i, c in enumerate(names):
        raw = _raw(c)
        lines.append(f"/{raw[0]}/{raw}")
        _jpg(base / raw[0] / raw / "sun_0001.jpg", i)
    (base / "ClassName.txt").write_text("\n".join(lines) + "\n")
    return {"count": len(names)}


def food101(root: Path) -> dict:
    base = root / "food-101"
    names = _names("food101")
    meta = {}
    for i, c in enumerate(names):
        raw = _raw(c)
        _jpg(base / "images" / raw / "1.jpg", i)
        meta[raw] = [f"{raw}/1"]
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "meta" / "test.json").write_text(json.dumps(meta))
    (base / "meta" / "classes.txt").write_text("\n".join(meta) + "\n")
    return {"count": len(names)}


def eurosat(root: Path, per_class: int = 2) -> dict:
    for i, c in enumerate(["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                           "PermanentCrop", "Residential", "River", "SeaLake"]):
        for k in range(per_class):
            _jpg(root / "eurosat" / "2750" / c / f"{c}_{k + 1}.jpg", i)
    return {"count": 10 * per_class}


def dtd(root: Path) -> dict:
    base = root / "dtd" / "dtd"
    lines = []
    for i, c in enumerate(_names("dtd")):
        _jpg(base / "images" / c / f"{c}_0001.jpg", i)
        lines.append(f"{c}/{c}_0001.jpg")
    (base / "labels").mkdir(parents=True, exist_ok=True)
    (base / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")
    return {"count": len(lines)}


def pcam(root: Path, n: int = 4) -> dict:
    import h5py

    d = root / "pcam"
    d.mkdir(parents=True, exist_ok=True)
    with h5py.File(d / "camelyonpatch_level_2_split_test_x.h5", "w") as f:
        f["x"] = np.random.default_rng(2).integers(0, 255, (n, 96, 96, 3), dtype=np.uint8)
    with h5py.File(d / "camelyonpatch_level_2_split_test_y.h5", "w") as f:
        f["y"] = np.array([i % 2 for i in range(n)], dtype=np.uint8).reshape(n, 1, 1, 1)
    return {"count": n}


def fabricate_all(root: Path) -> dict[str, dict]:
    """All 15 datasets under ``root``; returns name -> {"count": images of the evaluated split, "md5": ...}."""
    return {"cifar10": cifar(root, "cifar10"), "cifar100": cifar(root, "cifar100"), "stl10": stl10(root),
            "imagenet": imagenet(root), "caltech101": caltech101(root), "caltech256": caltech256(root),
            "oxford-pets": pets(root), "flowers102": flowers102(root), "fgvc-aircraft": aircraft(root),
            "stanford-cars": cars(root), "sun397": sun397(root), "food101": food101(root), "eurosat": eurosat(root),
            "dtd": dtd(root), "pcam": pcam(root)}


def as_official(monkeypatch, made: dict[str, dict]) -> None:
    """The fabricated copies' sizes as the official split sizes, their files' md5 sums as torchvision's."""
    from torchvision import datasets as D

    for name, facts in made.items():
        monkeypatch.setitem(SPECS, name, replace(SPECS[name], eval_images=facts["count"]))
    md5 = made.get("cifar10", {}).get("md5")
    if md5:
        monkeypatch.setattr(D.CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
        monkeypatch.setattr(D.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
        monkeypatch.setattr(D.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                                "md5": md5["batches.meta"]})
    md5 = made.get("cifar100", {}).get("md5")
    if md5:
        monkeypatch.setattr(D.CIFAR100, "train_list", [["train", md5["train"]]])
        monkeypatch.setattr(D.CIFAR100, "test_list", [["test", md5["test"]]])
        monkeypatch.setattr(D.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5["meta"]})
    md5 = made.get("stl10", {}).get("md5")
    if md5:
        monkeypatch.setattr(D.STL10, "train_list", [[f, md5[f]] for f in ("train_X.bin", "train_y.bin",
                                                                           "unlabeled_X.bin")])
        monkeypatch.setattr(D.STL10, "test_list", [[f, md5[f]] for f in ("test_X.bin", "test_y.bin")])
    md5 = made.get("flowers102", {}).get("md5")
    if md5:
        monkeypatch.setattr(D.Flowers102, "_file_dict", {"image": ("102flowers.tgz", None),
                                                         "label": ("imagelabels.mat", md5["imagelabels.mat"]),
                                                         "setid": ("setid.mat", md5["setid.mat"])})
