"""Return labels end to end (rules 9-11 of docs/rules.md, `return.label_generated`,
`return.label_email_requested`): a real worker turns an approved drop-off return into
files in `AFTERSALES_LABEL_DIR` that scan, makes them once, and keeps the buyer's e-mail
out of its logs.

Messages go in through a bare wire client; the files are read back the way a counter
scanner or a buyer's phone would (zxing-cpp, pypdf: tests/labels/decoding.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from redis import Redis

from tests.labels.decoding import decode_png, pdf_barcodes, pdf_text, uri_path
from tests.support.messages import (
    BUYER_ACTION,
    ORDER_EVENT,
    SELLER_ACTION,
    message,
    new_id,
    placed,
)
from tests.support.processes import wait_until
from tests.support.wire import EventListener, WireClient, protocol2_body, task_headers

pytestmark = pytest.mark.integration

LABEL_TASK = "aftersales.label"
LABEL_QUEUE = "aftersales.deadlines"
LABEL_VALIDITY = timedelta(days=14)
# docs/rules.md (policy file): the UK drop-off rate card (Evri), by parcel weight.
UK_RATES = ((Decimal("2"), "2.99"), (Decimal("5"), "4.49"), (Decimal("15"), "6.99"))
WHOLE_ORDER_KG = Decimal("2.2")  # placed(): SKU-1 2 x 0.5 kg, SKU-2 1 x 1.2 kg
SWEEP = {"AFTERSALES_SWEEP_INTERVAL": "PT0.5S"}
DAY = 86400.0


def uk_price(weight_kg: Decimal) -> str:
    return next(price for limit, price in UK_RATES if weight_kg <= limit)


def seconds_ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def files_in(directory: Path) -> list[str]:
    """Every name in the label directory, hidden temp files included."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- Given: a shop with delivered orders and return requests ------------------------------


@dataclass
class Shop:
    """The producers' side of a test: sends the facts and waits until the worker has them."""

    wire: WireClient
    events: EventListener
    redis: Redis

    def delivered_order(self, delivered_at: datetime, **order_fields: Any) -> str:
        """Placed, paid, shipped and delivered, event times in the past; a UK order by
        default (GBP; items with weights and sizes within Evri's limits).

        Returns once the worker has applied the delivery: it takes messages in parallel,
        and a `return_and_refund` request applied before `order.delivered` is refused
        (`not_delivered`) rather than held, so a request sent at once could lose that race.
        """
        from worker.adapters.redis_store import RedisStore  # a peek at state, Given only

        order = new_id("o")
        fields = {"marketplace": "UK", "currency": "GBP", **order_fields}
        placed_at = delivered_at - timedelta(days=3)
        self.wire.send(ORDER_EVENT, placed(order, placed_at, **fields))
        self.wire.send(ORDER_EVENT, message("order.paid", order, placed_at + timedelta(minutes=10)))
        self.wire.send(
            ORDER_EVENT,
            message("order.shipped", order, placed_at + timedelta(days=1), tracking_number="OUT-1"),
        )
        self.wire.send(ORDER_EVENT, message("order.delivered", order, delivered_at))
        store = RedisStore(self.redis)
        wait_until(
            lambda: getattr(store.load(order).state, "delivered_at", None) is not None,
            10.0,
            f"the worker never applied the delivery of {order}",
        )
        return order

    def request_return(
        self,
        order: str,
        at: datetime,
        *,
        reason: str = "changed_mind",
        method: str = "drop_off",
        **fields: Any,
    ) -> str:
        """A `return_and_refund` request; returns its request id once `return.requested`."""
        request = new_id("rr")
        self.wire.send(
            BUYER_ACTION,
            message(
                "buyer.return_requested",
                order,
                at,
                request_id=request,
                kind="return_and_refund",
                reason=reason,
                method=method,
                **fields,
            ),
        )
        self.events.wait_for(
            lambda e: e["type"] == "return.requested" and e["data"]["request_id"] == request
        )
        return request

    def approve(self, order: str, request: str, at: datetime) -> dict[str, Any]:
        approval = message("seller.return_approved", order, at, request_id=request)
        self.wire.send(SELLER_ACTION, approval)
        return approval

    def approved_drop_off(self, **request_fields: Any) -> tuple[str, str, datetime]:
        """A UK drop-off return the seller approved ten minutes ago:
        (order, request, approval time)."""
        order = self.delivered_order(seconds_ago(2 * DAY))
        request = self.request_return(order, seconds_ago(3600), **request_fields)
        approved_at = seconds_ago(600)
        self.approve(order, request, approved_at)
        return order, request, approved_at

    def label_of(self, request: str, timeout: float = 15.0) -> dict[str, Any]:
        """The `data` of the one `return.label_generated` of `request`."""
        (event,) = self.events.wait_for(
            lambda e: e["type"] == "return.label_generated" and e["data"]["request_id"] == request,
            timeout,
        )
        data: dict[str, Any] = event["data"]
        return data


@pytest.fixture
def shop(wire_client: WireClient, event_listener: EventListener, redis_client: Redis) -> Shop:
    return Shop(wire_client, event_listener, redis_client)


# --- 1, 2: the label scans, prints, and says who pays -------------------------------------


@pytest.mark.parametrize(
    ("reason", "request_fields", "weight_kg", "payer"),
    [
        ("changed_mind", {}, WHOLE_ORDER_KG, "buyer"),
        (
            "damaged",
            {"parcel": {"weight_kg": "7.5", "dimensions_cm": [40, 30, 20]}},
            Decimal("7.5"),
            "seller",
        ),
    ],
    ids=["buyer-choice-buyer-pays", "seller-fault-seller-pays"],
)
def test_an_approved_uk_drop_off_return_gets_a_label_that_scans(
    start_worker, shop, event_listener, tmp_path, reason, request_fields, weight_kg, payer
):
    # Given a worker and a delivered UK order with a drop-off return request
    start_worker()
    label_dir = (tmp_path / "labels").resolve()  # start_worker's AFTERSALES_LABEL_DIR

    # When the seller approves it
    order, request, approved_at = shop.approved_drop_off(reason=reason, **request_fields)

    # Then it is approved, and a label is generated for it
    (approved,) = event_listener.wait_for("return.approved")
    assert approved["data"] == {"request_id": request, "by": "seller"}
    label = shop.label_of(request)
    number = label["tracking_number"]
    assert label["carrier"] == "Evri"
    assert number.startswith("EV") and len(number) == 16 and number[2:].isdigit()
    assert label["qr_content"] == f"RET1|Evri|{number}|{order}|{request}"
    assert label["payer"] == payer
    assert label["cost"] == {"amount": uk_price(weight_kg), "currency": "GBP"}
    assert parse_time(label["valid_until"]) == approved_at + LABEL_VALIDITY

    # And its files are in the label directory and read back as the event says
    png, pdf = uri_path(label["qr_png_uri"]), uri_path(label["pdf_uri"])
    assert png.parent == label_dir and pdf.parent == label_dir
    assert png.name.endswith(".qr.png") and pdf.suffix == ".pdf"
    assert decode_png(png.read_bytes()) == [(zxingcpp.BarcodeFormat.QRCode, label["qr_content"])]
    pdf_bytes = pdf.read_bytes()
    assert number in pdf_text(pdf_bytes)
    assert pdf_barcodes(pdf_bytes) == {
        (zxingcpp.BarcodeFormat.Code128, number),
        (zxingcpp.BarcodeFormat.QRCode, label["qr_content"]),
    }


# --- 3: one approval, one label, however often it is processed ----------------------------


def test_a_drop_off_approval_processed_twice_gives_one_label(
    start_worker, shop, event_listener, tmp_path
):
    # Given a worker and a delivered UK order with a drop-off return request
    worker = start_worker(concurrency=2)
    order = shop.delivered_order(seconds_ago(2 * DAY))
    request = shop.request_return(order, seconds_ago(3600))

    # When the same approval arrives twice, and the label task is sent once more by hand
    approval = shop.approve(order, request, seconds_ago(600))
    shop.wire.send(SELLER_ACTION, approval)
    event_listener.wait_for("return.approved")
    resent = str(uuid.uuid4())
    shop.wire.celery.send_task(  # the worker declared the queue (classic on RabbitMQ)
        LABEL_TASK, args=[order, request], queue=LABEL_QUEUE, task_id=resent, declare=[]
    )

    # Then there is exactly one label event, and one set of files for the request
    shop.label_of(request)
    worker.wait_for_log(f"{LABEL_TASK}[{resent}] succeeded", timeout=45)
    event_listener.collect(2.0)
    assert len(event_listener.of_type("return.approved")) == 1
    assert len(event_listener.of_type("return.label_generated")) == 1
    names = files_in(tmp_path / "labels")
    assert len(names) == 3, names
    assert [sum(n.endswith(ext) for n in names) for ext in (".pdf", ".qr.png", ".qr.svg")] == [
        1,
        1,
        1,
    ], names


# --- 4: self-arranged returns have no label -----------------------------------------------


def test_an_approved_self_arrange_return_gets_no_label(
    start_worker, shop, event_listener, tmp_path
):
    # Given a worker and a delivered UK order with a self-arranged return request
    worker = start_worker()
    order = shop.delivered_order(seconds_ago(2 * DAY))
    request = shop.request_return(order, seconds_ago(3600), method="self_arrange")

    # When the seller approves it
    shop.approve(order, request, seconds_ago(600))

    # Then it is approved, but no label is made
    event_listener.wait_for("return.approved")
    event_listener.assert_none("return.label_generated", within=3.0)
    assert f"Task {LABEL_TASK}[" not in worker.log_text()
    assert files_in(tmp_path / "labels") == []


# --- 5: approval by the timer -------------------------------------------------------------

POLICY_XX = """\
[marketplaces.XX]
currency = "EUR"
return_response_calendar = "calendar"

[marketplaces.XX.drop_off]
carrier = "ParcelPoint"
rates = [ { up_to_kg = 5, price = "3.50" }, { up_to_kg = 20, price = "7.00" } ]
"""


def test_a_drop_off_return_approved_by_the_timer_gets_a_label(
    start_worker, start_beat, shop, event_listener, tmp_path
):
    # Given a marketplace whose sellers answer within 48 calendar hours, with a drop-off
    # carrier and rates, and a drop-off return request whose 48 h end in 4 s
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_XX)
    env = {**SWEEP, "AFTERSALES_POLICY_FILE": str(policy)}
    start_worker(env=env)
    start_beat(env=env)
    order = shop.delivered_order(seconds_ago(3 * DAY), marketplace="XX", currency="EUR")
    requested_at = seconds_ago(48 * 3600 - 4)
    request = shop.request_return(order, requested_at)
    respond_by = requested_at + timedelta(hours=48)

    # When the seller does not answer in time
    (auto,) = event_listener.wait_for("return.auto_approved", timeout=45)

    # Then the request is approved automatically, and its label follows
    assert auto["data"]["request_id"] == request
    assert parse_time(auto["data"]["deadline"]) == respond_by
    label = shop.label_of(request)
    assert label["carrier"] == "ParcelPoint" and label["tracking_number"].startswith("PA")
    assert label["cost"] == {"amount": "3.50", "currency": "EUR"}
    assert label["payer"] == "buyer"
    assert parse_time(label["valid_until"]) == respond_by + LABEL_VALIDITY
    png = uri_path(label["qr_png_uri"]).read_bytes()
    assert decode_png(png) == [(zxingcpp.BarcodeFormat.QRCode, label["qr_content"])]


# --- 6: the label by e-mail, and the address kept out of the logs -------------------------


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_a_label_email_request_points_at_the_pdf_and_the_address_stays_out_of_the_log(
    start_worker, shop, event_listener, loglevel
):
    # Given a drop-off return with its label (DEBUG: Celery also logs the raw request)
    worker = start_worker(loglevel=loglevel)
    order, request, _ = shop.approved_drop_off()
    label = shop.label_of(request)

    # When the buyer asks for it by e-mail, sent the way Celery's Python client sends a
    # task: with an `argsrepr` header made from the arguments, address included
    email = f"buyer.{uuid.uuid4().hex[:8]}@example.co.uk"
    asked = message(
        "buyer.label_email_requested", order, seconds_ago(60), request_id=request, email=email
    )
    task_id = str(uuid.uuid4())
    headers = {**task_headers(BUYER_ACTION, task_id), "argsrepr": repr((asked,))}
    shop.wire.send_raw(protocol2_body(asked), headers=headers)

    # Then the e-mail event carries the address and the label's PDF
    (emailed,) = event_listener.wait_for("return.label_email_requested")
    assert emailed["data"] == {"request_id": request, "email": email, "pdf_uri": label["pdf_uri"]}
    # And the worker logged the task, but the address (or its local part) nowhere
    worker.wait_for_log(f"{BUYER_ACTION}[{task_id}] succeeded", timeout=45)
    log = worker.log_text()
    assert f"{BUYER_ACTION}[{task_id}] received" in log
    assert email not in log and email.split("@")[0] not in log


# --- 7: a label that cannot be made dead-letters, and nothing half-made shows -------------


def test_a_label_that_cannot_be_written_is_dead_lettered_after_its_attempts(
    start_worker, shop, event_listener, tmp_path
):
    # Given a worker whose label directory cannot be created (its parent is a regular
    # file), allowed two attempts per label
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    worker = start_worker(
        env={"AFTERSALES_LABEL_DIR": str(blocker / "labels"), "AFTERSALES_LABEL_MAX_ATTEMPTS": "2"}
    )

    # When a drop-off return is approved
    order, request, _ = shop.approved_drop_off()

    # Then after its second attempt the label task is dead-lettered with the reason and ids
    (letter,) = event_listener.dead_letters(
        timeout=45, match=lambda body: body.get("reason") == "label_failed"
    )
    assert letter["task"] == LABEL_TASK
    assert letter["original"] == {"order_id": order, "request_id": request}
    assert "NotADirectoryError" in letter["error"] or "FileExistsError" in letter["error"]
    assert worker.log_text().count("label generation failed, will retry") == 1
    # And no label was announced, and no file, whole or partial, was left anywhere
    event_listener.assert_none("return.label_generated", within=1.0)
    left = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name.endswith((".pdf", ".png", ".svg", ".tmp"))
    ]
    assert left == []


def test_a_label_whose_pdf_cannot_be_stored_is_never_announced_and_leaves_no_temp_file(
    start_worker, shop, event_listener, tmp_path
):
    from worker.adapters.labels import label_file_names  # where the PDF will go

    # Given a drop-off return request whose PDF name is taken by a directory, so the QR
    # files are stored but the PDF, written last, cannot be
    labels = tmp_path / "labels"
    start_worker(env={"AFTERSALES_LABEL_MAX_ATTEMPTS": "2"})
    order = shop.delivered_order(seconds_ago(2 * DAY))
    request = shop.request_return(order, seconds_ago(3600))
    png_name, svg_name, pdf_name = label_file_names(order, request)
    (labels / pdf_name).mkdir(parents=True)

    # When the seller approves it
    shop.approve(order, request, seconds_ago(600))

    # Then the label task is dead-lettered, no label event names the incomplete files,
    # and no temp file is left beside them
    (letter,) = event_listener.dead_letters(
        timeout=45, match=lambda body: body.get("reason") == "label_failed"
    )
    assert letter["original"] == {"order_id": order, "request_id": request}
    assert "IsADirectoryError" in letter["error"]
    event_listener.assert_none("return.label_generated", within=1.0)
    assert files_in(labels) == sorted([png_name, svg_name, pdf_name])
