"""`aftersales demo`: a scripted story against a live worker, with event times in the past
so that 48-hour timers fire within seconds. Each scene sends real messages through the
typed client and waits for its promised outcomes on a queue of its own bound to
`aftersales.events`; the command fails if one does not come in time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import redis
from rich.console import Console

from schemas.inbound import (
    CancelRequested,
    OfferMade,
    OrderDelivered,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ReturnDroppedOff,
    ReturnRequested,
    SellerReturnApproved,
    SellerReturnReceived,
)
from worker.adapters.redis_store import RedisStore
from worker.cli.demo.render import describe, show_label
from worker.contract.client import Event, EventConsumer, Producer, build
from worker.settings import get_settings

LONDON = ZoneInfo("Europe/London")
SCENE_TIMEOUT = 20.0
"""Seconds a scene waits for its outcomes: they take well under a second, a timer at most
two ticks; the rest is room for a loaded machine."""


@dataclass
class Story:
    producer: Producer
    events: EventConsumer
    store: RedisStore  # where `send` sees each input committed
    console: Console
    ends_at: float  # time.monotonic() by which everything must have come
    seen: dict[str, list[Event]] = field(default_factory=dict)  # by order id
    missing: list[str] = field(default_factory=list)
    orders: set[str] = field(default_factory=set)  # the story's: a shared worker has others
    inputs: dict[str, int] = field(default_factory=dict)  # sent so far, by order id

    def send(self, *messages: Any) -> None:
        """Send each message once the one before it is committed, as facts reach a real
        worker over time: sent at once, two worker processes may take a cancel before the
        payment it follows, and an outcome published on the earlier state stands (event
        time's one exception, docs/rules.md)."""
        for message in messages:
            self.orders.add(message.order_id)
            self.producer.send(message)
            self.console.print(f"  [dim]→ {message.type} ({_ago(message.occurred_at)})[/dim]")
            self._committed(message.order_id)

    def _committed(self, order_id: str) -> None:
        self.inputs[order_id] = self.inputs.get(order_id, 0) + 1
        deadline = min(self.ends_at, time.monotonic() + SCENE_TIMEOUT)
        while (self.store.load(order_id).version < self.inputs[order_id]
               and time.monotonic() < deadline):  # fmt: skip
            time.sleep(0.02)

    def expect(self, order_id: str, *types: str) -> dict[str, Event]:
        """Wait for events of these types for the order, printing the story's as they come."""
        deadline = min(self.ends_at, time.monotonic() + SCENE_TIMEOUT)
        while not self._has(order_id, types) and (left := deadline - time.monotonic()) > 0:
            event = self.events.next_event(min(left, 0.5))
            if event is not None and event.subject in self.orders:
                self.seen.setdefault(event.subject, []).append(event)
                self.console.print(f"  [green]✓ {event.type}[/green] {describe(event, LONDON)}")
        got = {e.type: e for e in self.seen.get(order_id, [])}
        for missing in (t for t in types if t not in got):
            self.missing.append(f"{order_id}: {missing}")
            self.console.print(f"  [red]✗ {missing} did not come[/red]")
        return got

    def check(self, promise: str, kept: bool) -> None:
        if not kept:
            self.missing.append(promise)
        mark = "[green]✓[/green]" if kept else "[red]✗[/red]"
        self.console.print(f"  {mark} {promise}")

    def _has(self, order_id: str, types: tuple[str, ...]) -> bool:
        return set(types) <= {e.type for e in self.seen.get(order_id, [])}


def _ago(moment: datetime) -> str:
    delta = datetime.now(UTC) - moment
    if delta < timedelta(hours=2):
        return f"{int(delta.total_seconds() // 60)} min ago"
    if delta < timedelta(days=2):
        return f"{delta.total_seconds() / 3600:.0f} h ago"
    return f"{moment:%a %Y-%m-%d %H:%M} UTC"


def _order(order_id: str, at: datetime, marketplace: str = "US", currency: str = "USD") -> Any:
    return build(
        OrderPlaced, order_id=order_id, occurred_at=at, marketplace=marketplace,
        seller_id="demo-seller", buyer_id="demo-buyer", payment_method="prepaid",
        pricing="regular", currency=currency, shipping_fee="3.99",
        items=[{"sku": "MUG-1", "quantity": 2, "unit_price": "20.00", "weight_kg": 0.8,
                "dimensions_cm": [30, 20, 10]}],
    )  # fmt: skip


def _new(prefix: str) -> str:
    return f"demo-{prefix}-{uuid.uuid4().hex[:6]}"


def instant_cancel(story: Story) -> None:
    story.console.rule("1. The buyer cancels within the free-cancel hour: at once, full refund")
    order, now = _new("instant"), datetime.now(UTC)
    story.send(_order(order, now - timedelta(minutes=20)),
               build(OrderPaid, order_id=order, occurred_at=now - timedelta(minutes=15)),
               build(CancelRequested, order_id=order, occurred_at=now - timedelta(minutes=1),
                     reason="ordered the wrong colour"))  # fmt: skip
    got = story.expect(order, "order.cancelled", "refund.initiated")
    if "order.cancelled" in got:
        story.check(
            "instant buyer cancel: order.cancelled by buyer",
            getattr(got["order.cancelled"].data, "by", None) == "buyer",
        )


def ignored_cancel_request(story: Story) -> None:
    story.console.rule("2. A cancel request the seller ignores: accepted when 48 h pass")
    order, now = _new("ignored"), datetime.now(UTC)
    placed = now - timedelta(days=4)
    story.send(_order(order, placed),
               build(OrderPaid, order_id=order, occurred_at=placed + timedelta(minutes=10)),
               build(CancelRequested, order_id=order, occurred_at=now - timedelta(days=3),
                     reason="found it cheaper"))  # fmt: skip
    got = story.expect(order, "cancellation.requested", "cancellation.auto_accepted",
                       "order.cancelled", "refund.initiated")  # fmt: skip
    story.check("ignored cancel request auto-accepted", "cancellation.auto_accepted" in got)


def last_bank_holiday(today: date, oldest: date = date.min) -> date | None:
    """The latest weekday public holiday of England at least a week before `today` and not
    before `oldest` (None if there is none)."""
    found = holidays_lib.country_holidays("GB", subdiv="ENG", years=[today.year - 1, today.year])
    latest = today - timedelta(days=7)
    return max(
        (day for day in found if day.weekday() < 5 and oldest <= day <= latest), default=None
    )


def day_off_to_ask_before(today: date, retention: timedelta) -> tuple[date, str]:
    """The last bank holiday recent enough that the worker still takes the order (placed a
    few days before it, within AFTERSALES_RETENTION); else the last weekend a week ago."""
    oldest = today - retention + timedelta(days=RETENTION_MARGIN_DAYS)
    holiday = last_bank_holiday(today, oldest)
    if holiday is not None:
        found = holidays_lib.country_holidays("GB", subdiv="ENG", years=holiday.year)
        return holiday, str(found.get(holiday))
    saturday = today - timedelta(days=7 + (today.weekday() - 5) % 7)
    return saturday, "the weekend"


RETENTION_MARGIN_DAYS = 10
"""The scene's order is placed up to 9 days before its day off (Easter: four days off and
five days of delivery). The day off is kept within the retention so that the scene's
order expires like any other (an older one would be taken too: 1.2, a never-seen order)."""


def business_day_before(day: date) -> date:
    found = holidays_lib.country_holidays("GB", subdiv="ENG", years=[day.year - 1, day.year])
    day -= timedelta(days=1)
    while day.weekday() >= 5 or day in found:
        day -= timedelta(days=1)
    return day


def bank_holiday_return(story: Story) -> None:
    holiday, name = day_off_to_ask_before(datetime.now(LONDON).date(), get_settings().retention)
    story.console.rule(f"3. A UK return asked just before {name} ({holiday:%a %d %b %Y})")
    order = _new("uk-holiday")
    asked = datetime.combine(business_day_before(holiday), datetime.min.time(), LONDON)
    asked = (asked + timedelta(hours=10)).astimezone(UTC)
    delivered, placed = asked - timedelta(days=1), asked - timedelta(days=5)
    story.send(_order(order, placed, "UK", "GBP"),
               build(OrderPaid, order_id=order, occurred_at=placed + timedelta(hours=1)),
               build(OrderShipped, order_id=order, occurred_at=delivered - timedelta(days=2)),
               build(OrderDelivered, order_id=order, occurred_at=delivered),
               build(ReturnRequested, order_id=order, occurred_at=asked, request_id="r-1",
                     kind="refund_only", reason="damaged"))  # fmt: skip
    got = story.expect(order, "return.requested", "return.auto_approved", "refund.initiated")
    if "return.requested" in got:
        respond_by = getattr(got["return.requested"].data, "respond_by", asked)
        calendar_end = asked + timedelta(hours=48)
        skipped = "the weekend" if name == "the weekend" else f"the weekend and {name}"
        story.console.print(
            f"  48 calendar hours would end {calendar_end:%a %d %b %H:%M} UTC;"
            f" 48 business hours skip {skipped}."
        )
        story.check(
            "UK respond_by counts business hours past the day off",
            respond_by > asked + timedelta(hours=48 + 24),
        )


def drop_off_and_refund(story: Story) -> None:
    story.console.rule("4-5. A drop-off return: approved, QR label, dropped off, refunded")
    order, now = _new("drop-off"), datetime.now(UTC)
    story.send(_order(order, now - timedelta(days=5), "UK", "GBP"),
               build(OrderPaid, order_id=order, occurred_at=now - timedelta(days=5, hours=-1)),
               build(OrderShipped, order_id=order, occurred_at=now - timedelta(days=4)),
               build(OrderDelivered, order_id=order, occurred_at=now - timedelta(days=2)),
               build(ReturnRequested, order_id=order, occurred_at=now - timedelta(days=1),
                     request_id="r-1", kind="return_and_refund", method="drop_off",
                     reason="changed_mind"),
               build(SellerReturnApproved, order_id=order, request_id="r-1",
                     occurred_at=now - timedelta(hours=3)))  # fmt: skip
    got = story.expect(order, "return.approved", "return.label_generated")
    label = got.get("return.label_generated")
    if label is None:
        return
    show_label(label, story.console)
    tracking = str(getattr(label.data, "tracking_number", ""))
    story.send(build(ReturnDroppedOff, order_id=order, request_id="r-1",
                     tracking_number=tracking, occurred_at=now - timedelta(hours=2)),
               build(SellerReturnReceived, order_id=order, request_id="r-1",
                     occurred_at=now - timedelta(minutes=5)))  # fmt: skip
    got = story.expect(order, "refund.initiated")
    if "refund.initiated" in got:
        story.check(
            "refund with breakdown: items + shipping fee - return postage",
            _adds_up(got["refund.initiated"]),
        )


def _adds_up(refund: Event) -> bool:
    """The parts add up to the amount, and the buyer's return postage was deducted."""
    data = refund.data.model_dump()
    parts = data["breakdown"]
    total = (parts["items"] + parts["shipping_fee"] - parts["return_shipping_deduction"]
             + parts.get("return_shipping_refund", Decimal("0")))  # fmt: skip
    return bool(total == data["amount"] and parts["return_shipping_deduction"] > 0)


def offer_lapses(story: Story) -> None:
    story.console.rule("6. The seller offers a partial refund; the buyer never answers")
    order, now = _new("offer"), datetime.now(UTC)
    asked = now - timedelta(days=4)
    story.send(_order(order, now - timedelta(days=8)),
               build(OrderPaid, order_id=order, occurred_at=now - timedelta(days=8, hours=-1)),
               build(OrderShipped, order_id=order, occurred_at=now - timedelta(days=7)),
               build(OrderDelivered, order_id=order, occurred_at=now - timedelta(days=5)),
               build(ReturnRequested, order_id=order, occurred_at=asked, request_id="r-1",
                     kind="refund_only", reason="damaged"),
               build(OfferMade, order_id=order, request_id="r-1", offer="partial_refund",
                     amount="15.00", occurred_at=asked + timedelta(hours=6)))  # fmt: skip
    # The offer stops the seller's 48 h; a day without an answer lapses it, and the
    # seller's 48 h start again in full, then pass: the request is approved as asked.
    got = story.expect(order, "offer.made", "offer.lapsed", "return.auto_approved",
                       "refund.initiated")  # fmt: skip
    if "offer.lapsed" in got and "return.auto_approved" in got:
        lapsed = got["offer.lapsed"].data
        approved = got["return.auto_approved"].data
        story.check(
            "the seller's answer window restarted in full when the offer lapsed",
            getattr(approved, "deadline", None)
            == getattr(lapsed, "deadline", now) + timedelta(hours=48),
        )


SCENES = (
    instant_cancel,
    ignored_cancel_request,
    bank_holiday_return,
    drop_off_and_refund,
    offer_lapses,
)


def play(url: str, console: Console, budget: float, state_url: str | None = None) -> int:
    """Run every scene against the worker whose broker is `url` and state `state_url`
    (default: the same Redis); 0 if every promise was kept."""
    started = time.monotonic()
    with (
        EventConsumer(url, f"demo.events.{uuid.uuid4().hex[:8]}", ["#"], durable=False,
                      auto_delete=True) as events,
        Producer(url) as producer,
        redis.Redis.from_url(state_url or url) as redis_client,
    ):  # fmt: skip
        story = Story(producer, events, RedisStore(redis_client), console, ends_at=started + budget)
        for scene in SCENES:
            scene(story)
    elapsed = time.monotonic() - started
    if story.missing:
        console.print(f"[red]Demo incomplete after {elapsed:.1f} s; missing:[/red]")
        for missing in story.missing:
            console.print(f"  [red]- {missing}[/red]")
        console.print("Is the beat running (`celery -A worker beat`, or `aftersales run`)?")
        return 1
    console.print(f"[bold green]Every promised outcome came, in {elapsed:.1f} s.[/bold green]")
    return 0
