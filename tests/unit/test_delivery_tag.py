"""The delivery tag of an event the commit pushes (worker/adapters/direct_publish.py) has
the form kombu's own tags have: a random version 4 UUID's text."""

from __future__ import annotations

import uuid
from collections import Counter

from worker.adapters.direct_publish import delivery_tag


def test_a_tag_is_a_version_4_uuid_as_text() -> None:
    tags = [delivery_tag() for _ in range(5000)]
    for tag in tags:
        parsed = uuid.UUID(tag)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == tag  # lower-case, dashed: uuid4()'s own text
    assert len(set(tags)) == len(tags)
    # every variant digit occurs (the two free bits are random, not fixed)
    assert set(Counter(tag[19] for tag in tags)) == set("89ab")
