"""`aftersales.label`: make a drop-off return's label files, then record them.

Idempotent per request: the tracking number and file names derive from the ids, the
files are rewritten to the same bytes at most, and recording a second LabelGenerated is
a no-op in the rules. Failures retry with backoff and dead-letter with the reason.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Task

from tasks.errors import backoff
from worker import runtime
from worker.adapters.label_store import FileLabelStore
from worker.adapters.labels import LabelSpec, make_label
from worker.app import app
from worker.logging import bind, get_logger
from worker.rules.state import LabelGenerated, OrderState
from worker.settings import get_settings

log = get_logger("aftersales.labels")

MAX_ATTEMPTS = 8
"""Default runs before dead-lettering (`AFTERSALES_LABEL_MAX_ATTEMPTS`): with the backoff of
tasks/errors.py up to about a minute of waiting; a full disk or a broken font will not fix
itself sooner than someone looks at the dead letter."""


def max_attempts() -> int:
    return get_settings().label_max_attempts


@lru_cache(maxsize=1)
def label_store() -> FileLabelStore:
    return FileLabelStore(get_settings().label_dir)


def spec_for(state: OrderState, request_id: str) -> LabelSpec | None:
    """The label of an approved drop-off return that has none yet; None otherwise.

    The same conditions as the rule that records it (fulfilment.label_generated): a
    request refunded or closed before this task ran gets no files nobody would announce.
    """
    request = state.returns.get(request_id)
    if (
        state.order is None
        or state.policy is None
        or request is None
        or request.method != "drop_off"
        or request.status != "approved"
        or request.approved_at is None
        or request.label is not None
    ):
        return None
    validity = state.deadlines.get(f"label_validity:{request_id}")
    policy = state.policy
    valid_until = validity.due_at if validity else policy.end(policy.label_validity,
                                                              request.approved_at)
    return LabelSpec.for_return(
        order_id=state.order_id,
        request_id=request_id,
        carrier=state.policy.drop_off.carrier,
        seller_id=state.order.seller_id,
        cost=request.return_cost,
        currency=state.order.currency,
        payer=request.payer,
        valid_until=valid_until,
        issued_at=request.approved_at,
    )


# The attempt count is checked below against the setting, so Celery's own cap is off: with
# it on, a run past the cap would raise MaxRetriesExceededError instead of dead-lettering.
@app.task(name="aftersales.label", bind=True, max_retries=None)
def generate_label(self: Task, order_id: str, request_id: str) -> str:
    bind(order_id=order_id, request_id=request_id)
    try:
        loaded = runtime.store().load(order_id)
        spec = spec_for(loaded.state, request_id) if loaded.state else None
        if spec is None:
            return "not_needed"
        files = make_label(label_store(), spec)
        outcome = runtime.service().record_label(
            LabelGenerated(
                order_id=order_id,
                request_id=request_id,
                tracking_number=spec.tracking_number,
                qr_content=spec.qr_content,
                qr_png_uri=files.qr_png_uri,
                pdf_uri=files.pdf_uri,
            )
        )
    except Exception as exc:
        attempt = self.request.retries + 1
        if attempt >= max_attempts():
            log.error("label generation failed for good; dead-lettered", error=str(exc),
                      attempts=attempt)
            runtime.dead_letter(
                "aftersales.label",
                {"order_id": order_id, "request_id": request_id},
                f"{type(exc).__name__}: {exc}",
                "label_failed",
            )
            return "dead_lettered"
        log.warning("label generation failed, will retry", error=str(exc), attempt=attempt)
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    log.info("label recorded", status=outcome.status)
    return outcome.status
