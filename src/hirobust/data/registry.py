"""The dataset registry: one :class:`~.spec.DatasetSpec` per dataset, holding its facts in one place.

A spec names the dataset's loader, where its class names and prompt templates come from (JSON files under
``data/classnames/`` and ``data/templates/``, or a function), its shipped hierarchy (``hierarchy/data/<trees>.json``),
the size of its evaluation split, its CLIP_benchmark name and, for the 15 zero-shot datasets of docs/method.md §5, where
torchvision finds its files (:class:`Source`). Adding a dataset = one entry in :data:`SPECS` + its JSON files (and a
builder in :mod:`.builders` for a new torchvision dataset); ``tests/test_contract_datasets.py`` checks every entry.

Sources of the data files: the prompt templates are CLIP_benchmark's (``en_zeroshot_classification_templates.json``,
``{c}`` written ``{}``; Caltech-256 has no entry there and gets CLIP_benchmark's fallback, the ImageNet templates).
The class names are in label order, each file saying where they come from (CLIP_benchmark's ``en_classnames.json``
or torchvision's ``dataset.classes`` as CLIP_benchmark takes them); ImageNet's are open_clip's (:mod:`.imagenet`).

Data flows one way: this module sits on top, and hands each loader (:mod:`.zeroshot`, :mod:`.fashion_mnist`, the
builders of :mod:`.builders`) its spec or class names; those never import the registry. The name-based functions
here (:func:`classnames`, :func:`templates`, :func:`available`, ...) are thin wrappers over the spec's methods.

This module imports no torch (the command line checks dataset names before torch loads); loaders import what they
need when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import builders as B
from .imagenet import imagenet_classnames, imagenet_prompt_names
from .spec import DatasetSpec, Source

if TYPE_CHECKING:
    from .base import ZSDataset

__all__ = ["DatasetSpec", "Source", "SPECS", "DATASETS", "ZEROSHOT_DATASETS", "EVAL_IMAGES", "CLIP_BENCHMARK_ALIASES",
           "CLIP_BENCHMARK_NAME", "canonical_dataset", "classnames", "templates", "clip_benchmark_prompt_names",
           "available"]


# ------------------------------------------------------------------------------------------------- loaders
_SYNTHETIC_KW = ("n_per_class", "branching", "num_levels", "image_size", "noise", "seed")


def _fashion_mnist(split: str, root: str | Path | None = None, **_) -> ZSDataset:
    from . import fashion_mnist

    return fashion_mnist.load(SPECS["fashion-mnist"], split, root)


def _synthetic(split: str, root=None, **kw) -> ZSDataset:
    from .synthetic import make_synthetic

    return make_synthetic(split, **{k: v for k, v in kw.items() if k in _SYNTHETIC_KW})


def _synthetic_unlabelled(split: str, root=None, **kw) -> ZSDataset:
    from .synthetic import make_synthetic

    return make_synthetic(split, unlabelled=True, **{k: v for k, v in kw.items() if k in _SYNTHETIC_KW})


def _zeroshot_loader(name: str) -> Callable[..., ZSDataset]:
    """Loader of zero-shot evaluation dataset ``name`` (:func:`hirobust.data.zeroshot.load`, imported when called)."""

    def loader(split: str = "test", root: str | Path | None = None, image_size: int = 224, download: bool = False,
               **kw) -> ZSDataset:
        from . import zeroshot

        return zeroshot.load(SPECS[name], split, root=root, image_size=image_size, download=download, **kw)

    loader.__name__ = f"load_{name.replace('-', '_')}"
    return loader


def _zeroshot(name: str, eval_images: int, clip_benchmark: str | None, source: Source, **kw) -> DatasetSpec:
    """A zero-shot dataset: class names, templates and trees in the files named after it unless ``kw`` says else."""
    kw = {"classnames": name, "templates": name, "trees": name, **kw}
    return DatasetSpec(name, _zeroshot_loader(name), eval_images=eval_images, clip_benchmark=clip_benchmark,
                       source=source, **kw)


def _underscored(names: list[str]) -> dict[str, str]:
    """CIFAR-100: CLIP_benchmark prompts with torchvision's raw names, multi-word ones with underscores."""
    return {c: c.replace(" ", "_") for c in names if " " in c}


# ------------------------------------------------------------------------------------------------- the table
_PCAM = {"test": "test", "train": "train", "val": "valid"}

_SPECS = [
    DatasetSpec("fashion-mnist", _fashion_mnist, classnames="fashion-mnist", templates="fashion-mnist",
                trees="fashion-mnist", eval_images=10_000),
    DatasetSpec("synthetic", _synthetic),  # class names, templates and tree generated (hirobust.data.synthetic)
    DatasetSpec("synthetic-unlabelled", _synthetic_unlabelled),
    # the 15 zero-shot evaluation datasets of docs/method.md §5 (hirobust.data.zeroshot), "test" as mapped there.
    _zeroshot("cifar10", 10_000, "cifar10", Source(
        {"test": False, "train": True},
        lambda s: ["cifar-10-batches-py/batches.meta"] + (
            ["cifar-10-batches-py/test_batch"] if s == "test"
            else [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]),
        "root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", B.cifar("CIFAR10", "cifar10"))),
    _zeroshot("cifar100", 10_000, "cifar100", Source(
        {"test": False, "train": True},
        lambda s: ["cifar-100-python/meta", f"cifar-100-python/{s}"],
        "root/cifar-100-python/{train, test, meta}",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", B.cifar("CIFAR100", "cifar100")),
        prompt_names=_underscored),
    _zeroshot("stl10", 8_000, "stl10", Source(
        {"test": "test", "train": "train"},
        lambda s: [f"stl10_binary/{f}" for f in ("test_X.bin", "test_y.bin", "train_X.bin", "train_y.bin",
                                                  "unlabeled_X.bin", "class_names.txt")],
        "root/stl10_binary/{test_X.bin, test_y.bin, train_X.bin, train_y.bin, unlabeled_X.bin, class_names.txt} "
        "(torchvision checks all of them, whatever the split)",
        "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", B.stl10)),
    _zeroshot("imagenet", 50_000, "imagenet1k", Source(
        {"test": "val", "val": "val", "train": "train"},
        lambda s: [],
        "root/val/<wnid>/*.JPEG (ILSVRC-2012 validation images sorted into one folder per WordNet id such as "
        "n01440764; root/imagenet/val/ also works; labels follow the canonical wnid order of timm's "
        "imagenet_synsets.txt, a folder holding only some of the 1000 classes needs data.allow_partial=true)",
        None), classnames=imagenet_classnames, prompt_names=imagenet_prompt_names),
    # with its 467 background images (CLIP_benchmark's form, the default; 8,677 without)
    _zeroshot("caltech101", 9_144, "caltech101", Source(
        {"test": None}, lambda s: ["caltech101/101_ObjectCategories"],
        "root/caltech101/101_ObjectCategories/<category>/image_*.jpg (BACKGROUND_Google: class 0, as CLIP_benchmark)",
        "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", B.caltech101)),
    _zeroshot("caltech256", 30_607, None, Source(
        {"test": None}, lambda s: ["caltech256/256_ObjectCategories"],
        "root/caltech256/256_ObjectCategories/{001.ak47, ..., 257.clutter}/*.jpg",
        "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar", B.caltech256),
        templates="imagenet"),  # CLIP_benchmark's fallback for a dataset it has no templates for
    _zeroshot("oxford-pets", 3_669, "pets", Source(
        {"test": "test", "train": "trainval"},
        lambda s: ["oxford-iiit-pet/images", f"oxford-iiit-pet/annotations/{'trainval' if s == 'train' else s}.txt"],
        "root/oxford-iiit-pet/{images/*.jpg, annotations/{trainval,test}.txt}",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/data/{images,annotations}.tar.gz", B.oxford_pets)),
    _zeroshot("flowers102", 6_149, "flowers", Source(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: ["flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"],
        "root/flowers-102/{jpg/image_*.jpg, imagelabels.mat, setid.mat}",
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/{102flowers.tgz,imagelabels.mat,setid.mat}", B.flowers102,
        needs=("scipy",))),
    _zeroshot("fgvc-aircraft", 3_333, "fgvc_aircraft", Source(
        {"test": "test", "train": "train", "val": "val", "trainval": "trainval"},
        lambda s: ["fgvc-aircraft-2013b/data/images", "fgvc-aircraft-2013b/data/variants.txt",
                   f"fgvc-aircraft-2013b/data/images_variant_{s}.txt"],
        "root/fgvc-aircraft-2013b/data/{images/*.jpg, variants.txt, images_variant_<split>.txt}",
        "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz", B.fgvc_aircraft)),
    _zeroshot("stanford-cars", 8_041, "cars", Source(
        {"test": "test", "train": "train"},
        lambda s: ["stanford_cars/devkit/cars_meta.mat"] + (
            ["stanford_cars/cars_test", "stanford_cars/cars_test_annos_withlabels.mat"] if s == "test"
            else ["stanford_cars/cars_train", "stanford_cars/devkit/cars_train_annos.mat"]),
        "root/stanford_cars/{devkit/cars_meta.mat, cars_test/*.jpg, cars_test_annos_withlabels.mat} for the test "
        "split ({cars_train/, devkit/cars_train_annos.mat} for train); the original Stanford URL is gone, the files "
        "are mirrored e.g. on Kaggle (cars_test_annos_withlabels.mat holds the test labels)",
        None, B.stanford_cars, needs=("scipy",))),
    _zeroshot("sun397", 108_754, "sun397", Source(
        {"test": None}, lambda s: ["SUN397/ClassName.txt", "SUN397/a/abbey"],
        "root/SUN397/{ClassName.txt, a/abbey/sun_*.jpg, ...} (the 108,754 images of SUN397.tar.gz from "
        "https://vision.princeton.edu/projects/2010/SUN/; all are evaluated, as in CLIP_benchmark)",
        None, B.sun397)),
    _zeroshot("food101", 25_250, "food101", Source(
        {"test": "test", "train": "train"},
        lambda s: [f"food-101/meta/{s}.json", "food-101/meta/classes.txt", "food-101/images"],
        "root/food-101/{meta/{train,test}.json, images/<class>/*.jpg}",
        "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", B.food101)),
    _zeroshot("eurosat", 27_000, "eurosat", Source(
        {"test": None}, lambda s: ["eurosat/2750"],
        "root/eurosat/2750/{AnnualCrop, Forest, ..., SeaLake}/*.jpg (all 27,000 images are evaluated, as in "
        "CLIP_benchmark)",
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/main/EuroSAT.zip", B.eurosat)),
    _zeroshot("dtd", 1_880, "dtd", Source(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: ["dtd/dtd/images", f"dtd/dtd/labels/{s}1.txt"],
        "root/dtd/dtd/{images/<texture>/*.jpg, labels/{train,val,test}1.txt} (partition 1)",
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", B.dtd)),
    _zeroshot("pcam", 32_768, "pcam", Source(
        {"test": "test", "train": "train", "val": "val"},
        lambda s: [f"pcam/camelyonpatch_level_2_split_{_PCAM[s]}_{xy}.h5" for xy in ("x", "y")],
        "root/pcam/camelyonpatch_level_2_split_<test|train|valid>_{x,y}.h5 (decompressed)",
        "Google Drive, see https://github.com/basveeling/pcam (torchvision needs gdown for it)", B.pcam,
        needs=("h5py",))),
]
SPECS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}

DATASETS: dict[str, Callable[..., ZSDataset]] = {name: s.loader for name, s in SPECS.items()}
ZEROSHOT_DATASETS: list[str] = [name for name, s in SPECS.items() if s.source is not None]
# images in each evaluation split, for time projections (hirobust bench); the loaders count the images themselves
EVAL_IMAGES: dict[str, int] = {name: SPECS[name].eval_images for name in ZEROSHOT_DATASETS}

# CLIP_benchmark's names of the zero-shot datasets (``clip_benchmark eval --dataset ...``) -> hirobust's, where the
# two differ (imagenet1k, pets, flowers, fgvc_aircraft, cars); and back
CLIP_BENCHMARK_ALIASES: dict[str, str] = {s.clip_benchmark: name for name, s in SPECS.items()
                                          if s.clip_benchmark and s.clip_benchmark != name}
CLIP_BENCHMARK_NAME: dict[str, str] = {ours: theirs for theirs, ours in CLIP_BENCHMARK_ALIASES.items()}


def canonical_dataset(name: str) -> str:
    """hirobust's name of dataset ``name``, which may be spelt as CLIP_benchmark spells it. CLIP_benchmark's
    ``vtab/``, ``tfds/`` and ``wds/`` variants (other splits, other files) are refused with what to use instead."""
    prefix, _, rest = name.partition("/")
    if rest and prefix in ("vtab", "tfds", "wds"):
        ours = CLIP_BENCHMARK_ALIASES.get(rest, rest)
        raise ConfigError(f"dataset {name!r}: hirobust reads the torchvision version of each dataset, not "
                         f"CLIP_benchmark's {prefix}/ variant (other splits and files); use {ours!r} instead")
    return CLIP_BENCHMARK_ALIASES.get(name, name)


# ------------------------------------------------------------------------------------------------- facts by name
def classnames(name: str) -> list[str]:
    """Class names of registry dataset ``name`` in label order."""
    return SPECS[name].class_names()


def templates(name: str) -> list[str]:
    """Prompt templates of registry dataset ``name`` (each with one ``{}`` for the class name)."""
    return SPECS[name].prompt_templates()


def clip_benchmark_prompt_names(name: str) -> dict[str, str]:
    """Class name -> the name CLIP_benchmark puts in the prompt, where the two differ: CIFAR-100's multi-word names
    keep torchvision's underscores there ("aquarium_fish"), and ImageNet's two names hirobust makes unique are
    CLIP_benchmark's duplicates again ("projectile" -> "missile", "sunglass" -> "sunglasses"). Caltech-101 differs
    in its classes, not its names: CLIP_benchmark keeps torchvision's background class, which the loader adds."""
    spec = SPECS.get(name)
    return {} if spec is None else spec.clip_benchmark_prompt_names()


def available(name: str, root: str | Path | None = None, split: str = "test",
              allow_partial: bool = False) -> tuple[bool, str]:
    """Whether dataset ``name`` can be loaded from ``root`` without downloading, and why not (cheap: no image is read).

    For ``evaluate --datasets all``, which skips what is missing. Unknown names give ``(False, reason)``.
    """
    if name in ("synthetic", "synthetic-unlabelled"):
        return True, "generated on the fly"
    if name == "fashion-mnist":
        from . import fashion_mnist

        try:
            fashion_mnist.locate(root, download=False)
            return True, "found"
        except FileNotFoundError as e:
            return False, str(e)
    if name not in ZEROSHOT_DATASETS:
        return False, f"unknown zero-shot dataset {name!r}; known: {', '.join(ZEROSHOT_DATASETS)}"
    from . import zeroshot

    return zeroshot.available(SPECS[name], root, split, allow_partial)
