"""The documentation's tables and links stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.dead_letters import DEAD_LETTER_REASONS
from worker.rules.codes import ORDER_EXPIRED, REJECTION_CODES

ROOT = Path(__file__).resolve().parents[2]
RULES = (ROOT / "docs" / "rules.md").read_text()
# Every Markdown file a reader reaches from the README's index.
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "bench" / "README.md",
    ROOT / "examples" / "README.md",
]


def test_the_rules_list_every_rejection_code_and_no_other() -> None:
    section = RULES.split("## `action.rejected` codes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert listed == list(REJECTION_CODES)


def test_the_rules_give_each_code_its_meaning_from_the_code() -> None:
    section = RULES.split("## `action.rejected` codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", section, flags=re.M))
    assert rows == dict(REJECTION_CODES)


def test_the_expired_order_reason_is_a_dead_letter_reason_explained_in_the_rules() -> None:
    reasons = (ROOT / "docs" / "input-safety.md").read_text().split("## Reason codes", 1)[1]
    assert re.search(rf"^\| `{ORDER_EXPIRED}` \|", reasons, flags=re.M)
    retention = RULES.split("## Retention", 1)[1].split("\n## ", 1)[0]
    assert f"`{ORDER_EXPIRED}`" in retention
    assert ORDER_EXPIRED not in REJECTION_CODES  # a dead letter, not an action.rejected


def test_input_safety_lists_every_dead_letter_reason_and_no_other() -> None:
    reasons = (ROOT / "docs" / "input-safety.md").read_text().split("## Reason codes", 1)[1]
    listed = re.findall(r"^\| `([a-z_]+)` \|", reasons.split("\n## ", 1)[0], flags=re.M)
    assert listed == list(DEAD_LETTER_REASONS)
    assert ORDER_EXPIRED in DEAD_LETTER_REASONS


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings_that_exist(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)  # code is not links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{document.name}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{document.name}: #{anchor}"
