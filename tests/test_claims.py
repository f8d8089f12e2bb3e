"""The claims ledger (issue 20): every cited number in docs/evidence.md and README.md matches the JSON it cites, and
every result row copied into them is in the generated report it comes from; an edited number fails."""

from pathlib import Path

import pytest

from hirobust.app.claims import check_claims, check_tables, load_sources

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"docs/evidence.md": ["evidence/study/study.md", "evidence/zeroshot/zeroshot.md",
                             "evidence/synthetic-v2/study.md"],
        "README.md": ["evidence/demo/report.md", "evidence/study/study.md", "evidence/zeroshot/zeroshot.md"]}


@pytest.fixture(scope="module")
def sources():
    return load_sources(ROOT)


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_cited_number_matches_its_source(sources, doc):
    n, bad = check_claims((ROOT / doc).read_text(), sources, doc)
    assert n >= 10 and not bad, "\n".join(bad)


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_copied_result_row_is_in_its_report(doc):
    n, bad = check_tables((ROOT / doc).read_text(), [(ROOT / r).read_text() for r in DOCS[doc]], doc)
    assert n >= 3 and not bad, "\n".join(bad)


def test_an_edited_number_or_verdict_fails(sources):
    text = (ROOT / "docs/evidence.md").read_text()
    key = "‹study:parts/season/paired/hiro-tuned/robust/1›"
    line = next(ln for ln in text.splitlines() if key in ln)
    assert not check_claims(line, sources)[1]
    assert check_claims(line.replace("3.2 [1.6, 4.9]", "3.3 [1.6, 4.9]"), sources)[1]
    assert check_claims(line.replace("3.2 [1.6, 4.9]", "3.2 [1.5, 4.9]"), sources)[1]
    verdict = "**(d) Forest ≥ single tree: not reproduced** ‹study:rules/v2 (fixed 2026-12-06)/d/verdict›"
    assert verdict in text and not check_claims(verdict, sources)[1]
    assert check_claims(verdict.replace("not reproduced", "reproduced, clearly"), sources)[1]
    assert check_claims("0.1 ‹study:parts/no/such/key›", sources)[1]
    rows = [ln for ln in text.splitlines() if ln.startswith("| hiro-tuned |")]
    assert not check_tables(rows[0], [(ROOT / "evidence/study/study.md").read_text()])[1]
    assert check_tables(rows[0].replace("[", "[1", 1), [(ROOT / "evidence/study/study.md").read_text()])[1]
