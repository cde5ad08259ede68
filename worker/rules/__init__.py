"""The functional core: decide(state, input, now, policy) -> Decision.

Imports the standard library, schemas/ and pure libraries (holidays) only: no Redis, no
Celery, no clock, no environment.
"""

from worker.rules.codes import REJECTION_CODES
from worker.rules.decide import decide, new_state

__all__ = ["REJECTION_CODES", "decide", "new_state"]
