"""The one Markdown-table writer of the reports, the study, the comparison and the benchmark (and its rate format)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..stats import fmt_ci


def table_lines(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: ``head`` (column titles) over ``rows`` (each a sequence of cells as text)."""
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """:func:`table_lines` joined into one string."""
    return "\n".join(table_lines(head, rows))


def rate(v: float) -> str:
    """An img/s rate: whole numbers when large, three significant figures when small (CPU, big models)."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def get(d: dict | None, *keys):
    """``d[k1][k2]...``, or None where a key is missing (a report's optional entries)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def group_table(report: dict) -> str | None:
    """Markdown: seen vs unseen leaves (the zero-shot axis), clean and same-level robust accuracy per level."""
    L = report["num_levels"]
    models = {n: m for n, m in report["models"].items() if m.get("by_class_group")}
    if not models:
        return None
    first = next(iter(models.values()))["by_class_group"]
    lines = [f"Seen leaves (fine-tuned on): {', '.join(first['seen_classes'])}; unseen (held out of fine-tuning): "
             f"{', '.join(first['unseen_classes']) or 'none'}."]
    only = {b: n for b, n in first["unseen_only_nodes"].items() if n}
    lines.append("Superclasses whose leaves are all unseen: " + (
        "; ".join(f"L{b}: {', '.join(n)}" for b, n in only.items()) if only else "none") + ".")
    attack = report.get("attack", {}).get("attacks", ["pgd"])[0]
    head = ["model", "leaves", "n"] + [f"clean L{b}" for b in range(L)] + [f"robust L{b}" for b in range(L)]
    rows = []
    for name, m in models.items():
        for group in ("seen", "unseen"):
            g = m["by_class_group"][group]
            at = g["attacks"].get(attack, {})
            cells = [name, group, str(at.get("n", "—"))]
            cells += [fmt_ci(g["clean"][str(b)], g["clean_ci95"][str(b)]) for b in range(L)]
            cells += [fmt_ci(get(at, "robust", str(b), str(b)), get(at, "robust_ci95", str(b), str(b)))
                      for b in range(L)]
            rows.append(cells)
    return "\n".join(lines + [""] + table_lines(head, rows))
