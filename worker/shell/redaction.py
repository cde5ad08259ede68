"""A worker-side Request whose argument repr has e-mail addresses removed.

Flower and the worker's "Task received" line show `argsrepr`, which a producer computes
from the real arguments; `buyer.label_email_requested` carries a buyer's e-mail.
"""

from __future__ import annotations

from celery.worker.request import Request

from worker.logging import redact


class RedactedRequest(Request):  # type: ignore[misc]
    @property
    def argsrepr(self) -> str:
        return redact(str(super().argsrepr or ""))

    @property
    def kwargsrepr(self) -> str:
        return redact(str(super().kwargsrepr or ""))
