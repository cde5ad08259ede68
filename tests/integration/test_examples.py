"""The examples run against a real Redis and a real worker, as examples/README.md says."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.messages import new_id
from tests.unit.test_examples import load_example

pytestmark = pytest.mark.integration


def test_the_walkthrough_gets_every_return_event_and_the_label_files(redis_url, start_worker):
    walkthrough = load_example("walkthrough")
    start_worker()
    order_id = new_id("walkthrough")

    received = walkthrough.run(redis_url, order_id, timeout=90)

    assert [e.type for e in received] == list(walkthrough.EXPECTED)
    label = received[2]
    assert label.data.cost.amount == Decimal("2.99") and label.data.payer == "buyer"
    files = walkthrough.label_files(label)
    assert [p.suffix for p in files] == [".png", ".pdf"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert Path(str(files[0]).replace(".qr.png", ".qr.svg")).is_file()
