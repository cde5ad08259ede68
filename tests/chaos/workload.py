"""The chaos run's workload: `generate` gives one seeded random script per order (flows in
tests/chaos/flows.py, stages and probes in tests/chaos/script.py), `expected` the oracle's
outcomes for one. Like the oracle, imports nothing from `worker/` or `schemas/`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tests.chaos.flows import FLOWS
from tests.chaos.oracle import Outcome, expected_outcomes
from tests.chaos.script import DAY, Builder, Script, task_of

__all__ = ["FLOWS", "Script", "expected", "generate", "task_of"]

# Deadlines meant to fire during the run come due at least this long after sending
# starts, so that most of them fire after their order's messages are out.
MIN_LEAD = timedelta(seconds=20)


def expected(script: Script, horizon: datetime) -> list[Outcome]:
    """The oracle's outcomes for `script`, refusals of probes under their probe ref."""
    outcomes = expected_outcomes(script.order_id, script.messages, horizon)
    for outcome in outcomes:
        if outcome.type == "action.rejected" and outcome.ref in script.aliases:
            outcome.ref = script.aliases[outcome.ref]
            outcome.data.pop("message_id")
    return outcomes


def generate(
    orders: int,
    seed: int,
    now: datetime,
    spread: timedelta,
    lead: timedelta = MIN_LEAD,
) -> list[Script]:
    """`orders` scripts of every flow (1.1 and 1.2 included); deadlines meant to fire
    during the run are due in [now + lead, now + lead + spread]."""
    rng = random.Random(seed)
    flows = FLOWS
    names = sorted(flows)
    weights = [flows[name][1] for name in names]
    scripts = []
    for index in range(orders):
        name = rng.choices(names, weights)[0]
        marketplace = "UK" if rng.random() < 0.4 else "US"
        order_id = f"c{seed}-{index:05d}-{name}"
        builder = Builder(random.Random(rng.getrandbits(64)), order_id, name, marketplace)
        due = now + lead + spread * rng.random()
        if marketplace == "UK" and name == "return_silence":
            # Business hours put the answer deadline days later: keep it before the run.
            due = now - DAY * rng.randint(4, 6)
        flows[name][0](builder, now, due.replace(microsecond=0))
        if not builder.script.stages[-1]:
            builder.script.stages.pop()
            builder.script.gates.pop()
        scripts.append(builder.script)
    return scripts
