"""The API budget: read `Sforce-Limit-Info` on every answer and stop before the org's limit.

Salesforce returns `Sforce-Limit-Info: api-usage=N/M` on REST answers: N calls used of the org's
daily allowance M, counted over a rolling 24-hour window (REST API Developer Guide, "Limit Info
Header"). Before each call the budget refuses to go on once N reaches `share` x M, so the
connector stops with its cursor saved and leaves the rest of the allowance to other integrations.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from decimal import Decimal

from connector.clock import Clock
from connector.salesforce.errors import LIMIT_RETRY_AFTER, ApiBudgetExhausted

_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """The org's API usage as last reported by Salesforce."""

    used: int
    limit: int
    observed_at: dt.datetime

    @property
    def fraction(self) -> Decimal:
        """Used / limit (0 when the limit is unknown or zero)."""
        return Decimal(self.used) / Decimal(self.limit) if self.limit else Decimal(0)


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """(used, limit) from a `Sforce-Limit-Info` header value, or None when it has no api-usage."""
    if not header:
        return None
    match = _API_USAGE.search(header)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


class ApiBudget:
    """Tracks reported usage and the calls this client made; refuses calls past the share."""

    def __init__(self, share: Decimal, clock: Clock):
        if not Decimal(0) < share <= Decimal(1):
            raise ValueError("api_budget_share must be in (0, 1]")
        self.share = share
        self._clock = clock
        self._usage: ApiUsage | None = None
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def usage(self) -> ApiUsage | None:
        """The latest usage Salesforce reported (None before the first answer with the header)."""
        return self._usage

    @property
    def calls(self) -> int:
        """How many API calls this client has sent (token requests not included)."""
        return self._calls

    def count_call(self) -> None:
        """Record that one more call is being sent."""
        with self._lock:
            self._calls += 1

    def observe(self, header: str | None) -> None:
        """Take in a `Sforce-Limit-Info` header value from an answer."""
        parsed = parse_limit_info(header)
        if parsed is None:
            return
        with self._lock:
            self._usage = ApiUsage(parsed[0], parsed[1], self._clock.now())

    def check(self) -> None:
        """Raise ApiBudgetExhausted if the last reported usage is at or past the share."""
        usage = self._usage
        if usage is None or usage.limit <= 0:
            return
        if self._clock.now() - usage.observed_at >= LIMIT_RETRY_AFTER:
            return  # an old figure: let one call through, its answer says how much is left now
        if Decimal(usage.used) >= self.share * usage.limit:
            raise ApiBudgetExhausted(used=usage.used, limit=usage.limit, share=self.share,
                                     retry_after=self._clock.now() + LIMIT_RETRY_AFTER)
