"""Per-dataset facts for :mod:`hirobust.data.zeroshot`: torchvision constructor, split map, expected files, download.

Each ``build(root, split_arg, download, transform)`` returns ``(torch Dataset, labels)`` with labels read from what
torchvision keeps in memory, and checks torchvision's class list against ours where it exposes one (label order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .zeroshot_meta import CLASSNAMES

ZEROSHOT_DATASETS = [
    "cifar10", "cifar100", "stl10", "imagenet", "caltech101", "caltech256", "oxford-pets", "flowers102",
    "fgvc-aircraft", "stanford-cars", "sun397", "food101", "eurosat", "dtd", "pcam",
]

# Images in each evaluation split (the official counts; "test" as mapped in zeroshot.py), for time projections
# (hirobust.bench.project); the loaders count the images themselves. Caltech-101: with its 467 background images
# (CLIP_benchmark's form, the default; 8,677 without).
EVAL_IMAGES = {
    "cifar10": 10_000, "cifar100": 10_000, "stl10": 8_000, "imagenet": 50_000, "caltech101": 9_144,
    "caltech256": 30_607, "oxford-pets": 3_669, "flowers102": 6_149, "fgvc-aircraft": 3_333, "stanford-cars": 8_041,
    "sun397": 108_754, "food101": 25_250, "eurosat": 27_000, "dtd": 1_880, "pcam": 32_768,
}


@dataclass(frozen=True)
class Spec:
    splits: dict[str, Any]  # our split -> torchvision's split argument
    files: Callable[[str], list[str]]  # our split -> paths under root that must exist
    layout: str  # the folder layout, for error messages
    url: str | None  # where torchvision downloads from; None: the user must fetch it by hand
    build: Callable[..., tuple[Any, Sequence[int]]] | None = None
    needs: tuple[str, ...] = field(default_factory=tuple)  # extra Python packages torchvision needs here

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    @property
    def how_to_get(self) -> str:
        if self.url is None:
            return f"Expected layout: {self.layout}. torchvision cannot download this dataset: get it by hand."
        return (f"Expected layout: {self.layout}. Pass download=True to let torchvision fetch it ({self.url}) into "
                f"the data root, or put the files there yourself.")


def _check_names(name: str, theirs: Sequence[str], clean: Callable[[str], str] = lambda s: s) -> None:
    ours = CLASSNAMES[name]
    theirs = [clean(c) for c in theirs]
    if theirs != ours:
        diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        raise ValueError(f"{name}: torchvision's classes differ from ours at label {diff} "
                         f"({theirs[diff:diff + 1]} vs {ours[diff:diff + 1]}; {len(theirs)} vs {len(ours)} classes); "
                         f"the data on disk is not the expected version")


def _space(s: str) -> str:
    return s.replace("_", " ").replace("/", " ")


# ------------------------------------------------------------------------------------------------- builders
def _cifar(cls_name: str, name: str):
    def build(root: Path, train: bool, download: bool, tf):
        import torchvision.datasets as D

        ds = getattr(D, cls_name)(str(root), train=train, transform=tf, download=download)
        _check_names(name, ds.classes, _space)
        return ds, list(ds.targets)
    return build


def _stl10(root, split, download, tf):
    from torchvision.datasets import STL10

    ds = STL10(str(root), split=split, transform=tf, download=download)
    _check_names("stl10", ds.classes)
    return ds, [int(v) for v in ds.labels]


def _caltech101(root, _, download, tf):
    from torchvision.datasets import Caltech101

    ds = Caltech101(str(root), target_type="category", transform=tf, download=download)
    if len(ds.categories) != len(CLASSNAMES["caltech101"]):
        raise ValueError(f"caltech101: {len(ds.categories)} category folders, expected 101")
    return ds, list(ds.y)


def _caltech256(root, _, download, tf):
    from torchvision.datasets import Caltech256

    ds = Caltech256(str(root), transform=tf, download=download)
    if len(ds.categories) != len(CLASSNAMES["caltech256"]):
        raise ValueError(f"caltech256: {len(ds.categories)} category folders, expected 257")
    return ds, list(ds.y)


def _pets(root, split, download, tf):
    from torchvision.datasets import OxfordIIITPet

    ds = OxfordIIITPet(str(root), split=split, target_types="category", transform=tf, download=download)
    return ds, list(ds._labels)


def _flowers(root, split, download, tf):
    from torchvision.datasets import Flowers102

    ds = Flowers102(str(root), split=split, transform=tf, download=download)
    return ds, list(ds._labels)  # 0-based in every torchvision that has the class


def _aircraft(root, split, download, tf):
    from torchvision.datasets import FGVCAircraft

    ds = FGVCAircraft(str(root), split=split, annotation_level="variant", transform=tf, download=download)
    _check_names("fgvc-aircraft", ds.classes)
    return ds, list(ds._labels)


def _cars(root, split, _download, tf):
    from torchvision.datasets import StanfordCars

    ds = StanfordCars(str(root), split=split, transform=tf, download=False)
    _check_names("stanford-cars", ds.classes)
    return ds, [t for _, t in ds._samples]


def _sun397(root, _, download, tf):
    from torchvision.datasets import SUN397

    ds = SUN397(str(root), transform=tf, download=download)
    _check_names("sun397", ds.classes, _space)
    return ds, list(ds._labels)


def _food(root, split, download, tf):
    from torchvision.datasets import Food101

    ds = Food101(str(root), split=split, transform=tf, download=download)
    _check_names("food101", ds.classes, _space)
    return ds, list(ds._labels)


def _eurosat(root, _, download, tf):
    from torchvision.datasets import EuroSAT

    ds = EuroSAT(str(root), transform=tf, download=download)
    if len(ds.classes) != 10:
        raise ValueError(f"eurosat: {len(ds.classes)} class folders, expected 10")
    return ds, list(ds.targets)


def _dtd(root, split, download, tf):
    from torchvision.datasets import DTD

    ds = DTD(str(root), split=split, partition=1, transform=tf, download=download)
    _check_names("dtd", ds.classes)
    return ds, list(ds._labels)


def _pcam(root, split, download, tf):
    import h5py
    from torchvision.datasets import PCAM

    ds = PCAM(str(root), split=split, transform=tf, download=download)
    with h5py.File(Path(root) / "pcam" / ds._FILES[split]["targets"][0]) as f:  # 32 KB of labels, no image read
        labels = [int(v) for v in f["y"][:, 0, 0, 0]]
    return ds, labels


# ------------------------------------------------------------------------------------------------- the table
_PCAM = {"test": "test", "train": "train", "val": "valid"}

SPECS: dict[str, Spec] = {
    "cifar10": Spec(
        {"test": False, "train": True},
        lambda s: ["cifar-10-batches-py/batches.meta"] + (
            ["cifar-10-batches-py/test_batch"] if s == "test"
            else [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]),
        "root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", _cifar("CIFAR10", "cifar10")),
    "cifar100": Spec(
        {"test": False, "train": True},
        lambda s: ["cifar-100-python/meta", f"cifar-100-python/{s}"],
        "root/cifar-100-python/{train, test, meta}",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", _cifar("CIFAR100", "cifar100")),
    "stl10": Spec(
        {"test": "test", "train": "train"},
        lambda s: [f"stl10_binary/{f}" for f in ("test_X.bin", "test_y.bin", "train_X.bin", "train_y.bin",
                                                  "unlabeled_X.bin", "class_names.txt")],
        "root/stl10_binary/{test_X.bin, test_y.bin, train_X.bin, train_y.bin, unlabeled_X.bin, class_names.txt} "
        "(torchvision checks all of them, whatever the split)",
        "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", _stl10),
    "imagenet": Spec(
        {"test": "val", "val": "val", "train": "train"},
        lambda s: [],
        "root/val/<wnid>/*.JPEG (ILSVRC-2012 validation images sorted into one folder per WordNet id such as "
        "n01440764; root/imagenet/val/ also works; labels follow the canonical wnid order of timm's "
        "imagenet_synsets.txt, and a folder holding only some of the 1000 classes works)",
        None),
    "caltech101": Spec(
        {"test": None}, lambda s: ["caltech101/101_ObjectCategories"],
        "root/caltech101/101_ObjectCategories/<category>/image_*.jpg (BACKGROUND_Google: class 0, as CLIP_benchmark)",
        "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", _caltech101),
    "caltech256": Spec(
        {"test": None}, lambda s: ["caltech256/256_ObjectCategories"],
        "root/caltech256/256_ObjectCategories/{001.ak47, ..., 257.clutter}/*.jpg",
        "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar", _caltech256),
    "oxford-pets": Spec(
        {"test": "test", "train": "trainval"},
        lambda s: ["oxford-iiit-pet/images", f"oxford-iiit-pet/annotations/{'trainval' if s == 'train' else s}.txt"],
        "root/oxford-iiit-pet/{images/*.jpg, annotations/{trainval,test}.txt}",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/{images,annotations}.tar.gz", _pets),
    "flowers102": Spec(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: ["flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"],
        "root/flowers-102/{jpg/image_*.jpg, imagelabels.mat, setid.mat}",
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/{102flowers.tgz,imagelabels.mat,setid.mat}", _flowers,
        needs=("scipy",)),
    "fgvc-aircraft": Spec(
        {"test": "test", "train": "train", "val": "val", "trainval": "trainval"},
        lambda s: ["fgvc-aircraft-2013b/data/images", "fgvc-aircraft-2013b/data/variants.txt",
                   f"fgvc-aircraft-2013b/data/images_variant_{s}.txt"],
        "root/fgvc-aircraft-2013b/data/{images/*.jpg, variants.txt, images_variant_<split>.txt}",
        "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz", _aircraft),
    "stanford-cars": Spec(
        {"test": "test", "train": "train"},
        lambda s: ["stanford_cars/devkit/cars_meta.mat"] + (
            ["stanford_cars/cars_test", "stanford_cars/cars_test_annos_withlabels.mat"] if s == "test"
            else ["stanford_cars/cars_train", "stanford_cars/devkit/cars_train_annos.mat"]),
        "root/stanford_cars/{devkit/cars_meta.mat, cars_test/*.jpg, cars_test_annos_withlabels.mat} for the test "
        "split ({cars_train/, devkit/cars_train_annos.mat} for train); the original Stanford URL is gone, the files "
        "are mirrored e.g. on Kaggle (cars_test_annos_withlabels.mat holds the test labels)",
        None, _cars, needs=("scipy",)),
    "sun397": Spec(
        {"test": None}, lambda s: ["SUN397/ClassName.txt", "SUN397/a/abbey"],
        "root/SUN397/{ClassName.txt, a/abbey/sun_*.jpg, ...} (the 108,754 images of SUN397.tar.gz from "
        "https://vision.princeton.edu/projects/2010/SUN/; all are evaluated, as in CLIP_benchmark)",
        None, _sun397),
    "food101": Spec(
        {"test": "test", "train": "train"},
        lambda s: [f"food-101/meta/{s}.json", "food-101/meta/classes.txt", "food-101/images"],
        "root/food-101/{meta/{train,test}.json, images/<class>/*.jpg}",
        "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", _food),
    "eurosat": Spec(
        {"test": None}, lambda s: ["eurosat/2750"],
        "root/eurosat/2750/{AnnualCrop, Forest, ..., SeaLake}/*.jpg (all 27,000 images are evaluated, as in "
        "CLIP_benchmark)",
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/main/EuroSAT.zip", _eurosat),
    "dtd": Spec(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: ["dtd/dtd/images", f"dtd/dtd/labels/{s}1.txt"],
        "root/dtd/dtd/{images/<texture>/*.jpg, labels/{train,val,test}1.txt} (partition 1)",
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", _dtd),
    "pcam": Spec(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: [f"pcam/camelyonpatch_level_2_split_{_PCAM[s]}_{xy}.h5" for xy in ("x", "y")],
        "root/pcam/camelyonpatch_level_2_split_<test|train|valid>_{x,y}.h5 (decompressed)",
        "Google Drive, see https://github.com/basveeling/pcam (torchvision needs gdown for it)", _pcam,
        needs=("h5py",)),
}
