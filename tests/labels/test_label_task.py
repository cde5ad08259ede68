"""The label task's own decisions: which returns get files (`spec_for`), and how often it
tries (`AFTERSALES_LABEL_MAX_ATTEMPTS`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.labels import spec_for
from tests.support import factories as f
from tests.support.factories import T0, days, hours
from tests.support.timeline import Timeline
from worker.settings import Settings, SettingsError

APPROVED_AT = T0 + days(3) + hours(2)


def approved_return(method: str = "drop_off") -> tuple[Timeline, str]:
    """A delivered UK order with a return approved by the seller at APPROVED_AT."""
    placed = f.order_placed(marketplace="UK", currency="GBP")
    oid = placed.order_id
    timeline = Timeline(oid)
    timeline.send(
        placed,
        f.paid(oid, T0 + hours(1)),
        f.shipped(oid, T0 + hours(5)),
        f.delivered(oid, T0 + days(3)),
    )
    ask = f.return_requested(
        oid, T0 + days(3) + hours(1), kind="return_and_refund", method=method, reason="changed_mind"
    )
    timeline.send(ask, f.return_approved(oid, ask.request_id, APPROVED_AT))
    return timeline, ask.request_id


def test_an_approved_drop_off_return_without_a_label_gets_one() -> None:
    timeline, rid = approved_return()

    spec = spec_for(timeline.state, rid)

    assert spec is not None
    assert (spec.carrier, spec.currency, spec.payer) == ("Evri", "GBP", "buyer")
    assert spec.valid_until == APPROVED_AT + timedelta(days=14)
    assert spec.issued_at == APPROVED_AT


def test_no_label_once_it_exists_for_self_arrange_or_unknown_requests() -> None:
    labelled, rid = approved_return()
    labelled.label(rid)
    self_arranged, other = approved_return(method="self_arrange")

    assert spec_for(labelled.state, rid) is None
    assert spec_for(self_arranged.state, other) is None
    assert spec_for(labelled.state, "no-such-request") is None


def test_no_files_for_a_return_refunded_before_the_label_task_ran() -> None:
    timeline, rid = approved_return()
    timeline.send(f.return_received(timeline.order_id, rid, APPROVED_AT + hours(1)))

    assert timeline.state.returns[rid].status == "refunded"
    assert spec_for(timeline.state, rid) is None


@pytest.mark.parametrize(("raw", "expected"), [(None, 8), ("2", 2), ("1", 1)])
def test_label_attempts_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: int
) -> None:
    if raw is None:
        monkeypatch.delenv("AFTERSALES_LABEL_MAX_ATTEMPTS", raising=False)
    else:
        monkeypatch.setenv("AFTERSALES_LABEL_MAX_ATTEMPTS", raw)

    assert Settings.from_env().label_max_attempts == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", ""])
def test_a_bad_label_attempts_setting_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("AFTERSALES_LABEL_MAX_ATTEMPTS", raw)

    with pytest.raises(SettingsError, match="AFTERSALES_LABEL_MAX_ATTEMPTS"):
        Settings.from_env()
