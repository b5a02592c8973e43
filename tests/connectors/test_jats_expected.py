"""Hand-checked ground truth for figure extraction on real JATS articles (issue 10's measure).

``data/jats_realworld/expected_figures.jsonl`` holds, for every figure (and table delivered as an image)
of the collected real articles and of ``sample_data/jats/``, the caption prose and the image rendition a
reviewer found by reading the article XML (see ``data/jats_realworld/REVIEW.md``). This test parses each
reviewed article and requires that at least 99.5% of the expected figures get exactly the expected
caption and at least 99.5% exactly the expected href, that no expected figure is missing and that no
record appears that the review did not expect.
"""

from __future__ import annotations

import json
from pathlib import Path

from connectors.jats import parse_jats

REPO = Path(__file__).resolve().parents[2]
REALWORLD = REPO / "tests" / "connectors" / "data" / "jats_realworld"
EXPECTED = REALWORLD / "expected_figures.jsonl"
REQUIRED_SHARE = 0.995

# Reviewed articles in which no figure or image table should be found (no <fig>; tables in XML only;
# images standing in a <p> outside any <fig>, which are not figures under the documented rules).
REVIEWED_WITHOUT_FIGURES = (
    "tests/connectors/data/jats_realworld/f1000/f1000research-7-1655-v1-peer-review-materials.xml",
    "tests/connectors/data/jats_realworld/plos/pbio.0020188.xml",
    "tests/connectors/data/jats_realworld/scielo/rlae-2021-e3285-images-outside-fig.xml",
    "tests/connectors/data/jats_realworld/springer/1472-6831-8-11.nxml",
    "tests/connectors/data/jats_realworld/springer/bmc-cc11003.xml",
    "tests/connectors/data/jats_realworld/wolterskluwer/medknow-jpbs-editorial-PMC3895286.xml",
    "tests/connectors/data/jats_realworld/wolterskluwer/medknow-sjmms-editorial-PMC6298316.xml",
)


def _expected() -> dict[tuple[str, str], dict]:
    rows: dict[tuple[str, str], dict] = {}
    for number, line in enumerate(EXPECTED.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        key = (row["file"], row["key"])
        assert key not in rows, f"line {number}: {key} is listed twice"
        rows[key] = row
    return rows


def _parsed(files: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    records: dict[tuple[str, str], tuple[str, str]] = {}
    for file in files:
        for figure in parse_jats((REPO / file).read_bytes()).figures:
            records[(file, figure.key)] = (figure.href, figure.caption)
    return records


def test_every_collected_article_is_reviewed():
    reviewed = {row["file"] for row in _expected().values()} | set(REVIEWED_WITHOUT_FIGURES)
    collected = {
        path.relative_to(REPO).as_posix()
        for folder in (REALWORLD, REPO / "sample_data" / "jats")
        for path in folder.rglob("*")
        if path.suffix in (".xml", ".nxml")
    }
    assert not collected - reviewed, (
        f"articles without a review in expected_figures.jsonl: {collected - reviewed}"
    )
    assert not reviewed - collected, f"reviewed articles that are gone: {reviewed - collected}"


def test_captions_and_renditions_match_the_hand_checked_truth():
    expected = _expected()
    files = sorted({file for file, _ in expected} | set(REVIEWED_WITHOUT_FIGURES))
    parsed = _parsed(files)

    caption_right = href_right = 0
    wrong: list[str] = []
    for key, row in expected.items():
        href, caption = parsed.get(key, (None, None))
        caption_right += caption == row["caption"]
        href_right += href == row["href"]
        if caption != row["caption"]:
            wrong.append(f"{key}: caption\n  parser:   {caption!r}\n  expected: {row['caption']!r}")
        if href != row["href"]:
            wrong.append(f"{key}: href\n  parser:   {href!r}\n  expected: {row['href']!r}")
    total = len(expected)
    caption_share, href_share = caption_right / total, href_right / total
    print(
        f"\n{total} hand-checked figures in {len(files)} articles: "
        f"caption share {caption_share:.4f} ({caption_right}/{total}), "
        f"href share {href_share:.4f} ({href_right}/{total})"
    )
    for line in wrong:
        print(line)

    missing = sorted(set(expected) - set(parsed))
    unexpected = sorted(set(parsed) - set(expected))
    assert not missing, f"expected figures the parser does not emit: {missing}"
    assert not unexpected, f"records the review did not expect: {unexpected}"
    assert caption_share >= REQUIRED_SHARE, "\n".join(wrong)
    assert href_share >= REQUIRED_SHARE, "\n".join(wrong)
