"""The one Markdown-table writer of the reports, the study, the comparison and the benchmark (and its rate format)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
