"""docs/observability.md lists every metric the worker exports, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.observability.exported import exported_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"

pytestmark = pytest.mark.integration


def documented() -> set[str]:
    section = DOC.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(aftersales_[a-z_]+)` \|", section, flags=re.M))


def family(sample: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", sample)


def test_the_docs_list_exactly_the_exported_metrics(redis_client):
    exported = {family(name) for name in exported_names(redis_client)}
    # a histogram's `_count`/`_sum` would also strip a counter name ending so: none does
    assert documented() == exported
