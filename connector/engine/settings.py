"""Engine settings: the knobs SPEC sections 4 and 6 leave to the admin."""
from __future__ import annotations

from dataclasses import dataclass, field

from connector.engine.model import TriggerDate

ALL_ORDER_METRICS = ("mrr", "tcv", "tcb", "elp", "quantity")


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs to know beyond the records themselves."""

    #: which trigger date starts service; the others are fallbacks in SPEC order
    service_start_trigger: TriggerDate = TriggerDate.SERVICE_ACTIVATION
    #: bill cycle day when neither the order nor the account gives one
    default_bill_cycle_day: int = 1
    #: which Zuora-style order metrics are generated (teams without ELP turn it off)
    order_metrics: tuple[str, ...] = field(default=ALL_ORDER_METRICS)
    #: how far ahead evergreen lines are materialized: at activation, this many months from their
    #: start; the extension job keeps them this many months past today (SPEC section 7)
    evergreen_horizon_months: int = 12
