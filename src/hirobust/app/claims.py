"""The claims ledger: every result stated in the write-ups (docs/evidence.md, README.md) cites the number behind it,
and :func:`check_claims` re-reads each cited number and fails when the text no longer matches it.

A citation is a tag ``‹source:path›`` right after what it supports:

- after ``12.3 [10.1, 14.5]`` (or ``+3.2 [1.5, 5.0]``, with either minus sign): the cited entry's value and 95%
  interval (``value``/``diff``/``mean`` and ``ci95``), in percent with one decimal;
- after a lone number ``12.3``: the cited entry's value (a number, or an entry's ``value``/``diff``/``mean``);
- after ``90% [−0.87, 0.90]``: a cited ``ci90`` (two decimals);
- after words: the cited text (a verdict) must appear in the sentence before the tag, case-insensitively.

``source`` names a JSON file (:data:`SOURCES`); ``path`` is a ``/``-separated path into it. Tables copied from a
generated report are checked another way: every copied row must appear verbatim in that report
(:func:`check_tables`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SOURCES = {"study": "evidence/study/study.json", "zs": "evidence/zeroshot/zeroshot.json",
           "demo": "evidence/demo/report.json", "sv2": "evidence/synthetic-v2/study.json"}
TAG = re.compile(r"‹(\w+):([^›]+)›")
_NUM = r"[−+-]?\d+(?:\.\d+)?"
_CI = re.compile(rf"({_NUM}) \[({_NUM}), ({_NUM})\]\s*\**\s*$")
_CI90 = re.compile(rf"\[({_NUM}), ({_NUM})\]\)?\s*\**\s*$")
_ONE = re.compile(rf"({_NUM})\s*\**\s*$")


def _num(text: str) -> float:
    return float(text.replace("−", "-").replace("+", ""))


def _resolve(doc, path: str):
    node = doc
    for key in path.split("/"):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise KeyError(path)
    return node


def load_sources(root: str | Path) -> dict:
    return {k: json.loads((Path(root) / v).read_text()) for k, v in SOURCES.items() if (Path(root) / v).exists()}


def _value(node) -> float | None:
    if isinstance(node, (int, float)):
        return float(node)
    if isinstance(node, dict):
        for k in ("value", "diff", "mean"):
            if isinstance(node.get(k), (int, float)):
                return float(node[k])
    return None


def check_claims(text: str, sources: dict, where: str = "") -> tuple[int, list[str]]:
    """(tags checked, mismatches) of ``text``; each mismatch names the line, the tag, the text and the number. A
    number may wrap onto the tag's line (whitespace is normalised); ``‹src:…›`` and ``‹src:key›`` explain the syntax
    and are skipped."""
    bad, count, start = [], 0, 0
    for m in TAG.finditer(text):
        src, path = m.group(1), m.group(2)
        before = re.sub(r"\s+", " ", text[start:m.start()]).rstrip()
        start = m.end()
        if path in ("…", "key"):
            continue
        count += 1
        tag = f"{where}:{text.count(chr(10), 0, m.start()) + 1} ‹{src}:{path}›"
        try:
            node = _resolve(sources[src], path)
        except KeyError:
            bad.append(f"{tag}: no such key in {SOURCES.get(src, src)}")
            continue
        if isinstance(node, str):
            if node.lower() not in before.lower():
                bad.append(f"{tag}: the text does not say {node!r}")
            continue
        if path.endswith("ci90"):
            got = _CI90.search(before)
            want = [round(100 * x, 2) for x in node]
            if not got or [_num(g) for g in got.groups()] != want:
                bad.append(f"{tag}: text {before[-24:]!r}, source {want}")
            continue
        v = _value(node)
        ci = node.get("ci95") if isinstance(node, dict) else None
        got = _CI.search(before)
        if got and ci:
            want = [round(100 * v, 1), round(100 * ci[0], 1), round(100 * ci[1], 1)]
            if [_num(g) for g in got.groups()] != [x + 0.0 for x in want]:
                bad.append(f"{tag}: text {got.group(0)!r}, source {want}")
            continue
        one = _ONE.search(before)
        if v is None or not one:
            bad.append(f"{tag}: no number before the tag")
        elif abs(_num(one.group(1)) - round(100 * v, 1)) > 1e-9:
            bad.append(f"{tag}: text {one.group(1)!r}, source {100 * v:.1f}")
    return count, bad


def check_tables(text: str, reports: list[str], where: str = "") -> tuple[int, list[str]]:
    """(lines checked, lines not found verbatim in any of ``reports``): every line with an interval (a table row,
    a copied sentence) of a paragraph or list item that cites nothing (no ‹tag›) must be a copy of a line of a
    generated report."""
    lines = set()
    for r in reports:
        lines |= {ln.strip() for ln in r.splitlines()}
    bad, count, block = [], 0, []

    def flush():
        if block and not any(TAG.search(ln) for _, ln in block):
            for i, ln in block:
                if re.search(r"\d \[[−-]?\d", ln):
                    nonlocal count
                    count += 1
                    if ln.strip() not in lines:
                        bad.append(f"{where}:{i}: a result that cites nothing and is not in the generated report: "
                                   f"{ln.strip()[:80]}")
        block.clear()

    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip() or re.match(r"\s*- ", ln):
            flush()
        if ln.strip():
            block.append((i, ln))
    flush()
    return count, bad
