"""Regenerates the shipped hierarchy files of the zero-shot datasets: ``python tools/zeroshot_trees.py``.

Sources: ``zeroshot_trees_wordnet[_trees]`` (WordNet-checked trees of CIFAR-10/100, STL-10, Caltech-101/256),
``zeroshot_trees_taxonomy`` (FGVC-Aircraft's own variant/family/manufacturer labels; Stanford Cars' make and body
type, parsed from the class names) and ``zeroshot_trees_hand`` (SUN397's official categories, Food-101, Flowers-102,
Pets, DTD, EuroSAT, PCAM). ``--check`` verifies that the shipped files are what this script writes; ``--report NAME``
lists, for a WordNet-checked tree, the placements WordNet's hypernyms do not make (each decided by hand). ImageNet's
file is written by ``tools/imagenet_trees.py``. CIFAR-100's file keeps its official ``coarse`` tree (the default) and
gains ``wordnet``. The class names come from the registry (:func:`hirobust.data.registry.classnames`); the files go to
``src/hirobust/hierarchy/data/`` of this checkout. Run with hirobust importable (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import zeroshot_trees_hand as hand
import zeroshot_trees_taxonomy as tax
import zeroshot_trees_wordnet as wnt
from zeroshot_trees_wordnet_trees import TREES as WORDNET_TREES

from hirobust.data.registry import classnames

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "hirobust" / "hierarchy" / "data"

DATASETS = ["cifar10", "cifar100", "stl10", "caltech101", "caltech256", "oxford-pets", "flowers102", "fgvc-aircraft",
            "stanford-cars", "sun397", "food101", "eurosat", "dtd", "pcam"]


def nested_paths(tree: dict, up: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """``{top: {...: {level 1: [leaves]}}}`` -> ``{leaf: [level 1, ..., top]}`` (shorter paths allowed)."""
    out: dict[str, list[str]] = {}
    for node, sub in tree.items():
        if isinstance(sub, dict):
            out.update(nested_paths(sub, (node,) + up))
        else:
            for leaf in sub:
                if leaf in out:
                    raise ValueError(f"leaf {leaf!r} appears twice in the tree")
                out[leaf] = [node, *up]
    return out


def _tree(description: str, paths: dict[str, list[str]], classes: list[str]) -> dict:
    missing = [c for c in classes if c not in paths]
    extra = [c for c in paths if c not in classes]
    if missing or extra:
        raise ValueError(f"tree does not cover the classes exactly: missing {missing[:5]}, unknown {extra[:5]}")
    depth = max(len(p) for p in paths.values())
    return {"description": description, "num_levels": depth + 1, "paths": {c: paths[c] for c in classes}}


# ------------------------------------------------------------------------------------------------- WordNet check
def hypernym_closure(name: str) -> set[str]:
    """Names of all hypernyms (and instance hypernyms) of synset ``name``, transitively."""
    from hirobust.hierarchy.wordnet import wordnet

    wn = wordnet()
    seen: set[str] = set()
    stack = [wn.synset(name)]
    while stack:
        for h in (s := stack.pop()).hypernyms() + s.instance_hypernyms():
            if h.name() not in seen:
                seen.add(h.name())
                stack.append(h)
    return seen


def hand_placements(name: str) -> tuple[int, list[tuple[str, str]]]:
    """(number of WordNet-checked (leaf, node) pairs, the pairs WordNet's hypernyms do not make)."""
    paths = nested_paths(WORDNET_TREES[name])
    checked, hand_made = 0, []
    for leaf, path in paths.items():
        syn = wnt.LEAF_SYNSETS[name][leaf]
        closure = hypernym_closure(syn) if syn else set()
        for node in path:
            senses = wnt.NODE_SYNSETS[node]
            checked += 1
            if not syn or not senses or not set(senses) & closure:
                hand_made.append((leaf, node))
    return checked, hand_made


# ------------------------------------------------------------------------------------------------- the datasets
_WN_LEVELS = {
    2: "level 1 = basic superordinate (mammal, aircraft, ...), level 2 = animal / vehicle",
    3: "level 1 = basic superordinate (mammal, insect, flower, motor vehicle, furniture, ...), level 2 = kind "
       "(animal, plant, person, vehicle, musical instrument, ...), level 3 = domain (living thing, food, man-made "
       "object, natural scene)",
}


def _wordnet_tree(name: str) -> dict:
    paths = nested_paths(WORDNET_TREES[name])
    depth = max(len(p) for p in paths.values())
    checked, hand_made = hand_placements(name)
    fixes = sorted({leaf for leaf in paths if leaf in wnt.SENSE_FIXES})
    fixed = f"; first-sense errors fixed for {', '.join(fixes)}" if fixes else ""
    text = (f"L={depth}, WordNet-checked: {_WN_LEVELS[depth]}. Leaves are WordNet 3.0 senses chosen by hand "
            f"(tools/zeroshot_trees_wordnet.py LEAF_SYNSETS{fixed}); node names are prompt-usable group names. "
            f"{checked - len(hand_made)} of {checked} (leaf, node) placements follow WordNet's hypernyms; "
            f"{len(hand_made)} were decided by hand where WordNet lacks the link or the leaf is not a WordNet concept "
            f"(python tools/zeroshot_trees.py --report {name}). Shorter paths repeat their top node.")
    return _tree(text, paths, classnames(name))


def _aircraft() -> dict:
    classes = classnames("fgvc-aircraft")
    fam = {v: tax.AIRCRAFT_FAMILIES[tax.aircraft_family(v)] for v in classes}
    maker = {v: [f[0], f[1]] for v, f in fam.items()}
    role = {v: [f[0], f[2]] for v, f in fam.items()}
    return {
        "manufacturer": _tree(
            "L=2, the dataset's own taxonomy: variant -> family (70, FGVC-Aircraft's families.txt, spelled out with "
            "the maker; ' series' or a popular name added where the family name would repeat a variant) -> "
            "manufacturer (30, manufacturers.txt), as in fgvc-aircraft-2013b's per-image annotations.", maker,
            classes),
        "role": _tree(
            "L=2: variant -> family (as in the 'manufacturer' tree) -> role (wide-body / narrow-body airliner, "
            "regional jet, turboprop airliner, business jet, military aircraft, light aircraft, piston airliner), "
            "assigned by hand per family.", role, classes),
    }


def _cars() -> dict:
    classes = classnames("stanford-cars")
    make = {c: [tax.car_make(c), f"{tax.CAR_MAKE_COUNTRY[tax.car_make(c)]} car"] for c in classes}
    body = {c: [tax.car_body(c), tax.CAR_BODY_GROUP[tax.car_body(c)]] for c in classes}
    return {
        "make": _tree("L=2: model -> make (49, the first word(s) of the class name) -> country of the brand "
                      "('German car', ...).", make, classes),
        "body-type": _tree("L=2: model -> body type (sedan, coupe, convertible, hatchback, station wagon, SUV, pickup "
                           "truck, van, minivan; from the body word in the class name, 'Cab' = pickup truck, 18 "
                           "names without one decided by hand) -> passenger car / utility vehicle.", body, classes),
    }


_HAND = {
    "sun397": ("official", hand.SUN397,
               "L=2, the official SUN hierarchy (vision.princeton.edu/projects/2010/SUN/hierarchy): scene -> its 16 "
               "level-2 categories -> indoor / outdoor natural / outdoor man-made, renamed for prompts. The official "
               "table may put a scene in several categories; each scene has its single most natural one here, "
               "assigned by hand (not checked against the official spreadsheet)."),
    "food101": ("dish-type", hand.FOOD101,
                "L=2 by hand (Food-101 has no taxonomy): dish -> dish type (cake or pie, pastry, salad, soup, pasta "
                "dish, sandwich, ...) -> course (sweet dish, starter or side dish, main dish)."),
    "flowers102": ("botanical", hand.FLOWERS102,
                   "L=2 by hand from each flower's genus: flower -> botanical family (APG IV, by its common English "
                   "name: 'flower of the aster family') -> major clade (monocot, eudicot, magnoliid, early-diverging "
                   "flowering plant)."),
    "oxford-pets": ("breed-group", hand.PETS,
                    "L=2 by hand: breed -> breed group (dogs by FCI group: terrier, hound, gun dog, working dog, toy "
                    "dog, spitz-type dog; UKC for the American Bulldog and American Pit Bull Terrier; cats by coat: "
                    "long-haired, short-haired, hairless) -> cat / dog."),
    "dtd": ("visual-primitive", hand.DTD,
            "L=2 by hand (DTD has no taxonomy): texture -> its dominant visual primitive (linear, spotty, curved, "
            "lattice-like, wispy, holey, rough) -> patterned / fabric-like / uneven; adjectives, to fit 'a photo of "
            "a {} texture'."),
    "eurosat": ("corine", hand.EUROSAT,
                "L=2 by hand: land cover class -> CORINE Land Cover level 1 (agricultural area, artificial surface, "
                "forest or semi-natural area, water body; the nomenclature EuroSAT's classes follow) -> land used by "
                "people / natural area."),
    "pcam": ("tissue", hand.PCAM,
             "L=1 by hand: the two classes (healthy or metastatic lymph node patch) share one root, 'lymph node "
             "tissue'; there is no meaningful grouping in between, so level 1 is trivial (one node)."),
}


def _cifar100_coarse() -> dict:
    data = json.loads((SHIPPED / "cifar100.json").read_text())
    return data["trees"]["coarse"]


def build(name: str) -> dict:
    """The JSON of dataset ``name``'s hierarchy file."""
    classes = classnames(name)
    if name in WORDNET_TREES and name != "cifar100":
        trees, default = {"wordnet": _wordnet_tree(name)}, "wordnet"
    elif name == "cifar100":
        coarse = dict(_cifar100_coarse())
        coarse.setdefault("num_levels", 2)
        trees, default = {"coarse": coarse, "wordnet": _wordnet_tree(name)}, "coarse"
    elif name == "fgvc-aircraft":
        trees, default = _aircraft(), "manufacturer"
    elif name == "stanford-cars":
        trees, default = _cars(), "make"
    else:
        tree_name, nested, text = _HAND[name]
        trees, default = {tree_name: _tree(text, nested_paths(nested), classes)}, tree_name
    return {"dataset": name, "classes": list(classes), "num_levels": trees[default]["num_levels"],
            "default": default, "trees": trees}


def dumps(data: dict) -> str:
    """JSON with one line per class path (diff-friendly)."""
    lines = ["{"]
    head = [k for k in data if k != "trees"]
    for k in head:
        lines.append(f'  {json.dumps(k)}: {json.dumps(data[k], ensure_ascii=False)},')
    lines.append('  "trees": {')
    for i, (tname, spec) in enumerate(data["trees"].items()):
        lines.append(f"    {json.dumps(tname)}: {{")
        for k in (k for k in spec if k != "paths"):
            lines.append(f'      {json.dumps(k)}: {json.dumps(spec[k], ensure_ascii=False)},')
        lines.append('      "paths": {')
        items = list(spec["paths"].items())
        for j, (leaf, path) in enumerate(items):
            comma = "," if j < len(items) - 1 else ""
            leaf_s, path_s = json.dumps(leaf, ensure_ascii=False), json.dumps(path, ensure_ascii=False)
            lines.append(f"        {leaf_s}: {path_s}{comma}")
        lines.append("      }")
        lines.append("    }" + ("," if i < len(data["trees"]) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/zeroshot_trees.py", description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="*", default=DATASETS, help="which files (default: all but imagenet)")
    p.add_argument("--out", type=Path, default=None, help="folder to write to (default: the package's hierarchy data)")
    p.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    p.add_argument("--report", metavar="NAME", help="list the hand placements of a WordNet-checked tree")
    args = p.parse_args(argv)
    if args.report:
        checked, made = hand_placements(args.report)
        print(f"{args.report}: {len(made)} of {checked} placements by hand")
        for leaf, node in made:
            print(f"  {leaf!r} -> {node!r}")
        return 0
    out = args.out or SHIPPED
    stale = []
    for name in args.datasets:
        text = dumps(build(name))
        path = out / f"{name}.json"
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
            continue
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)} (regenerate with python tools/zeroshot_trees.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
