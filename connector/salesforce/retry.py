"""One retry policy for every call to Salesforce: transient failures only, bounded, with jitter.

Retried: `TransientError` (503 / SERVER_UNAVAILABLE, UNABLE_TO_LOCK_ROW, connection failures and
timeouts). Never retried: everything else, notably 400/404 (the same request fails the same way)
and REQUEST_LIMIT_EXCEEDED, which stops the run instead. Waits grow exponentially with random
jitter so that parallel workers do not retry in step; the `sleep` is injectable so tests never wait.

Retries never nest: an error that has already been through a policy (its attempts spent) is marked
`retries_exhausted` and is not retried again by an enclosing call. Without that, a login retried five
times inside each of five retries of a describe multiplied into minutes of waiting (issue 8).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connector.errors import TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    max_attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def call(self, fn: Callable[[], T], *, what: str) -> T:
        """Run `fn`, retrying TransientError; re-raise the last one when attempts run out."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("Salesforce %s: attempt %d of %d failed (%s); retrying in %.1fs",
                        what, state.attempt_number, self.max_attempts,
                        str(exc).splitlines()[0] if exc else "?", wait)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.initial_wait, max=self.max_wait, jitter=self.jitter),
            retry=retry_if_exception(_retriable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except TransientError as exc:
            exc.retries_exhausted = True  # type: ignore[attr-defined]
            raise

    def limited(self, *, max_attempts: int, max_wait: float) -> "RetryPolicy":
        """The same policy (and sleep) with at most `max_attempts` attempts and `max_wait` seconds a wait."""
        return replace(self, max_attempts=min(self.max_attempts, max_attempts),
                       initial_wait=min(self.initial_wait, max_wait), max_wait=min(self.max_wait, max_wait),
                       jitter=min(self.jitter, max_wait))


def _retriable(exc: BaseException) -> bool:
    # A transient failure is retried unless it says the call may already have taken effect, or an
    # inner policy already spent its attempts on it.
    return (isinstance(exc, TransientError) and getattr(exc, "retry_safe", True)
            and not getattr(exc, "retries_exhausted", False))
