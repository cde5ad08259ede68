"""`aftersales.label`: make a drop-off return's label files, then record them.

Idempotent per request: the tracking number and file names derive from the ids, the
files are rewritten to the same bytes at most, and recording a second LabelGenerated is
a no-op in the rules. Failures retry with backoff (`retry_later`: a retry whose copy
cannot be published while Redis is away requeues the message instead of losing it) and
dead-letter with the reason after AFTERSALES_LABEL_MAX_ATTEMPTS runs.
Which returns get a label is a rule (worker/rules/fulfilment.py); where the files go is
the wiring's choice (worker/runtime.py: `label_store`).
"""

from __future__ import annotations

from celery import Task

from tasks.errors import TRANSIENT, retry_later
from tasks.typed import task
from worker import runtime
from worker.adapters.labels import LabelSpec, make_label
from worker.adapters.topology import LABEL_TASK
from worker.logging import bind, get_logger
from worker.rules.fulfilment import label_needed, label_valid_until
from worker.rules.state import LabelGenerated, OrderState
from worker.settings import get_settings

log = get_logger("aftersales.labels")


def spec_for(state: OrderState, request_id: str) -> LabelSpec | None:
    """The label files an approved drop-off return needs now; None if it needs none."""
    request = label_needed(state, request_id)
    if request is None or state.order is None or state.policy is None:
        return None
    return LabelSpec.for_return(
        order_id=state.order_id,
        request_id=request_id,
        carrier=state.policy.drop_off.carrier,
        seller_id=state.order.seller_id,
        cost=request.return_cost,
        currency=state.order.currency,
        payer=request.payer,
        valid_until=label_valid_until(state, request),
        issued_at=request.approved_at,
    )


# The attempt count is checked below against the setting, so Celery's own cap is off: with
# it on, a run past the cap would raise MaxRetriesExceededError instead of dead-lettering.
@task(name=LABEL_TASK, bind=True, max_retries=None)
def generate_label(self: Task, order_id: str, request_id: str) -> str:
    bind(order_id=order_id, request_id=request_id)
    try:
        loaded = runtime.store().load(order_id)
        spec = spec_for(loaded.state, request_id) if loaded.state else None
        if spec is None:
            return "not_needed"
        files = make_label(runtime.label_store(), spec)
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
        if attempt >= get_settings().label_max_attempts:
            log.error(
                "label generation failed for good; dead-lettered", error=str(exc), attempts=attempt
            )
            try:
                runtime.dead_letter(
                    LABEL_TASK,
                    {"order_id": order_id, "request_id": request_id},
                    f"{type(exc).__name__}: {exc}",
                    "label_failed",
                )
            except TRANSIENT as down:  # cannot even dead-letter: keep it, try again
                raise retry_later(self, down) from down
            return "dead_lettered"
        log.warning("label generation failed, will retry", error=str(exc), attempt=attempt)
        # Never Celery's plain retry: its copy may not be publishable (tasks/errors.py).
        raise retry_later(self, exc) from exc
    log.info("label recorded", status=outcome.status)
    return outcome.status
