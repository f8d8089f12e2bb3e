"""Build-time generator of the ImageNet-1k hierarchy forest from WordNet 3.0 hypernym paths.

Leaves are the 1000 ImageNet-1k classes in class-index order, named by open_clip's curated
``IMAGENET_CLASSNAMES`` (the names CLIP prompts use; :mod:`hirobust.data.imagenet`); their WordNet ids
come from the timm wheel. The result ships as ``src/hirobust/hierarchy/data/imagenet.json``
(``python tools/imagenet_trees.py --write``), so WordNet is needed only to rebuild it.

Construction (deterministic; docs/method.md §1 counts levels from the leaf, so level 1 is always the leaf's
own parent and no leaf needs its name repeated below it):

1. **Chains.** Each hypernym path of a leaf synset is read leaf-first and cut below the first synset of
   :data:`GENERIC_TOP` (WordNet's abstract upper ontology: entity, physical entity, object, whole, ...),
   which carries no visual meaning. Paths are enumerated in WordNet's *file* order (the lexicographer's
   primary hypernym first: dog -> canine before dog -> domestic animal; nltk's own order depends on
   ``PYTHONHASHSEED``). A leaf's *windows* are the distinct first-``L`` parts of its chains; window 0
   follows every synset's primary hypernym.
2. **Tree k** gives each leaf its window ``k mod (number of windows)`` (705 leaves have one window and are
   alike in every tree). WordNet is a DAG: two leaves may reach a synset X and leave it by different
   hypernyms, but a tree needs one parent per node. So leaves are taken in class order and the first one
   to reach X fixes X's chain above it; later leaves through X follow it (*splice*: still a true WordNet
   path; tree 0 needs none, trees 1-4 splice 4-23 leaves). A tree equal to an earlier one is dropped.
3. **Levels.** Level ``l`` is the ``l``-th ancestor on the chain; a chain shorter than ``L`` repeats its
   top node (209 leaves have fewer than 5 ancestors below the generic top).
4. **Names.** A node is named by its synset's first lemma (underscores as spaces). Where synsets used
   anywhere in the forest share a lemma (case-insensitively), the most used one keeps it and the others
   become ``"lemma (primary hypernym's lemma)"``, as does an inner node whose lemma is a leaf's name
   (``"duck (anseriform bird)"``). Across all trees one name means one synset, so every tree passes
   :meth:`Hierarchy.from_paths`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from hirobust.data.imagenet import imagenet_classnames, imagenet_wnids
from hirobust.hierarchy import Forest, Hierarchy
from hirobust.hierarchy.wordnet import synset_from_wnid, wordnet

# WordNet's abstract top: every synset of min depth <= 2 met on an ImageNet path, plus whole.n.02 and the
# two "part" senses (a piece of some whole). A chain stops below the first of these.
GENERIC_TOP = frozenset({
    "entity.n.01", "physical_entity.n.01", "abstraction.n.06", "object.n.01", "matter.n.03", "causal_agent.n.01",
    "communication.n.02", "attribute.n.02", "relation.n.01", "whole.n.02", "part.n.01", "part.n.02",
})
TREE_NAMES = ["wordnet"] + [f"wordnet-{k}" for k in range(1, 16)]


# ---------------------------------------------------------------------------------------------- trees
def hypernyms(syn) -> list:
    """``syn``'s hypernyms (and instance hypernyms) in WordNet's file order: the lexicographer's primary first.

    nltk keeps a synset's pointers in a set, so its ``hypernyms()`` order changes with ``PYTHONHASHSEED``;
    we read the order from the synset's line in ``data.<pos>`` instead.
    """
    wn = wordnet()
    f = _data_file(syn.pos())
    f.seek(syn.offset())
    fields = f.readline().split("|")[0].split()
    i = 4 + 2 * int(fields[3], 16)
    out = []
    for j in range(int(fields[i])):
        sym, off, pos = fields[i + 1 + 4 * j: i + 4 + 4 * j]
        if sym in ("@", "@i"):
            out.append(wn.synset_from_pos_and_offset(pos, int(off)))
    return out


@functools.cache
def _data_file(pos: str):
    return wordnet().open({"n": "data.noun", "v": "data.verb"}[pos])


@functools.cache
def _chains_above(syn) -> tuple[tuple, ...]:
    """Every hypernym chain ``(parent, grandparent, ...)`` of ``syn``, cut below :data:`GENERIC_TOP`, in file order."""
    out = []
    for h in hypernyms(syn):
        if h.name() in GENERIC_TOP:
            out.append(())
        else:
            out += [(h, *c) for c in _chains_above(h)]
    return tuple(dict.fromkeys(out)) or ((),)


def leaf_chains(syn, L: int = 5) -> list[list]:
    """The leaf's chains ``[parent, grandparent, ...]`` (synsets, cut below :data:`GENERIC_TOP`), one per
    distinct first-``L`` window, in WordNet's file order (so chain 0 follows every synset's primary hypernym)."""
    out: dict[tuple, list] = {}
    for chain in _chains_above(syn):
        out.setdefault(tuple(s.name() for s in chain[:L]), list(chain))
    if () in out:
        raise ValueError(f"{syn.name()} has no hypernym below the generic top")
    return list(out.values())


def tree_chains(leaf_syns: list, k: int, L: int = 5) -> list[list]:
    """Tree ``k``'s chain for each leaf: its ``k``-th window (cycling), spliced so each synset has one parent."""
    above: dict = {}  # synset -> the fixed chain above it in this tree
    out = []
    for syn in leaf_syns:
        options = leaf_chains(syn, L)
        chain = list(options[k % len(options)])
        for i, s in enumerate(chain):
            if s in above:
                chain = chain[: i + 1] + above[s]
                break
        for i, s in enumerate(chain):
            above.setdefault(s, chain[i + 1:])
        out.append(chain[:L])
    return out


def node_names(synsets, leaf_names) -> dict:
    """Prompt names for inner synsets (``synsets`` lists each once per use): first lemma where unambiguous.

    Of several synsets sharing a lemma (case-insensitively), the one used most often (then: the lowest
    WordNet sense number) keeps the plain lemma, unless a leaf class has that name; every other one is
    named ``"lemma (first hypernym's lemma)"``.
    """
    def lemma(s) -> str:
        return s.lemmas()[0].name().replace("_", " ")

    uses = Counter(synsets)
    groups: dict[str, list] = defaultdict(list)
    for s in sorted(uses, key=lambda s: (-uses[s], int(s.name().rsplit(".", 1)[1]), s.name())):
        groups[lemma(s).casefold()].append(s)
    taken = {n.casefold() for n in leaf_names}
    names = {}
    for key, group in groups.items():
        for i, s in enumerate(group):
            if i == 0 and key not in taken:
                names[s] = lemma(s)
            else:
                names[s] = f"{lemma(s)} ({lemma(hypernyms(s)[0])})"
    clash = Counter(n.casefold() for n in names.values()) + Counter(taken)
    if max(clash.values()) > 1:
        raise RuntimeError(f"node name {clash.most_common(1)[0][0]!r} is still ambiguous after disambiguation")
    return names


def imagenet_tree_data(num_trees: int = 5, L: int = 5) -> dict:
    """The hierarchy file's dict (``data/imagenet.json``'s content), rebuilt from WordNet (a fresh copy)."""
    return copy.deepcopy(_tree_data(num_trees, L))


@functools.lru_cache(maxsize=4)
def _tree_data(num_trees: int, L: int) -> dict:
    classes = list(imagenet_classnames())
    syns = [synset_from_wnid(w) for w in imagenet_wnids()]
    chains_per_tree, seen = [], set()
    for k in range(num_trees):
        chains = tree_chains(syns, k, L)
        key = tuple(tuple(s.name() for s in c) for c in chains)
        if key not in seen:
            seen.add(key)
            chains_per_tree.append((k, chains))
    names = node_names([s for _, chains in chains_per_tree for c in chains for s in c], classes)
    trees = {}
    for i, (k, chains) in enumerate(chains_per_tree):
        # (the text names the generator's old module; kept so that the shipped file stays byte-identical)
        desc = (f"WordNet 3.0 hypernyms of the ImageNet-1k synsets, level l = l-th ancestor of the leaf: each leaf "
                f"takes its hypernym path {k} (cycling over its distinct paths in WordNet's file order, primary "
                f"hypernym first; the first leaf in class order through a synset fixes the path above it), cut "
                f"below the generic top (entity, object, whole, ...). Built by hirobust.hierarchy.imagenet.")
        trees[TREE_NAMES[i]] = {"description": desc,
                                "paths": {c: [names[s] for s in ch] for c, ch in zip(classes, chains)}}
    return {"dataset": "imagenet", "classes": classes, "num_levels": L + 1, "default": TREE_NAMES[0], "trees": trees}


def imagenet_forest(num_trees: int = 5, L: int = 5) -> Forest:
    """Up to ``num_trees`` distinct trees with ``L`` superclass levels (``num_levels = L + 1``), from WordNet."""
    data = imagenet_tree_data(num_trees, L)
    return Forest([Hierarchy.from_paths(t["paths"], leaves=data["classes"], num_levels=data["num_levels"], name=n)
                   for n, t in data["trees"].items()])


# ---------------------------------------------------------------------------------------------- report, I/O
def forest_stats(forest: Forest) -> dict:
    """``{tree: {"nodes_per_level": [...], "leaves_differing_from_first": n}}``."""
    first = forest[0]
    out = {}
    for t in forest:
        differ = sum(t.path(leaf) != first.path(leaf) for leaf in t.leaves)
        out[t.name] = {"nodes_per_level": [t.num_nodes(lvl) for lvl in range(t.num_levels)],
                       "leaves_differing_from_first": differ}
    return out


def dumps(data: dict) -> str:
    """Compact JSON in the shipped layout: one line per class path."""
    lines = ["{", f'  "dataset": {json.dumps(data["dataset"])},', f'  "classes": {json.dumps(data["classes"])},',
             f'  "num_levels": {data["num_levels"]},', f'  "default": {json.dumps(data["default"])},', '  "trees": {']
    for i, (name, tree) in enumerate(data["trees"].items()):
        lines += [f"    {json.dumps(name)}: {{", f'      "description": {json.dumps(tree["description"])},',
                  '      "paths": {']
        items = list(tree["paths"].items())
        lines += [f"        {json.dumps(c)}: {json.dumps(p)}" + ("," if j < len(items) - 1 else "")
                  for j, (c, p) in enumerate(items)]
        lines += ["      }", "    }" + ("," if i < len(data["trees"]) - 1 else "")]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def shipped_path() -> Path:
    """The shipped file in this checkout: ``src/hirobust/hierarchy/data/imagenet.json``."""
    return Path(__file__).resolve().parents[1] / "src" / "hirobust" / "hierarchy" / "data" / "imagenet.json"


def write_json(path: str | Path | None = None, num_trees: int = 5, L: int = 5) -> Path:
    """Rebuild from WordNet and write the hierarchy file atomically (default: the shipped ``data/imagenet.json``)."""
    path = Path(path) if path else shipped_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(dumps(imagenet_tree_data(num_trees, L)))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python tools/imagenet_trees.py", description=__doc__.split("\n")[0])
    ap.add_argument("--write", nargs="?", const="", default=None, help="write the JSON (default: the shipped file)")
    ap.add_argument("--trees", type=int, default=5)
    ap.add_argument("--levels", type=int, default=5, help="L, superclass levels above the leaves")
    args = ap.parse_args(argv)
    if args.write is not None:
        print(f"wrote {write_json(args.write or None, args.trees, args.levels)}")
    for name, st in forest_stats(imagenet_forest(args.trees, args.levels)).items():
        print(f"{name}: nodes per level {st['nodes_per_level']}, leaves differing from the first tree "
              f"{st['leaves_differing_from_first']}")


if __name__ == "__main__":
    main()
