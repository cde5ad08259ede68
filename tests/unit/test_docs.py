"""The README's tables stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from worker.rules.codes import REJECTION_CODES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_lists_every_rejection_code_and_no_other():
    section = README.split("### `action.rejected` codes", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert listed == list(REJECTION_CODES)
