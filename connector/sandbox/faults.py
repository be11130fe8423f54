"""Programmable faults: rules that make the sandbox org fail the way a real org does.

A rule matches requests by HTTP method and a regular expression searched in the path (the
path includes ``/services/data/vNN.0``); it fires on the matching requests after the first
``skip`` of them, ``times`` times (``None``: for ever). Request-level rules answer the whole
request; record-level rules (``partial_failure``, ``lock_rows``) are taken by the handlers that
process records (sObject Collections and Bulk API 2.0 ingest jobs, at upload or close) and fail
the chosen record positions (0-based) while the others succeed.

    org.faults.add(Fault.server_unavailable(path=r"/query", times=2))
    org.faults.add(Fault.partial_failure([1, 3], path=r"/composite/sobjects"))
    org.faults.add(Fault.session_expired())          # 401 until the client gets a new token
    org.faults.add(Fault.slow(0.5, path=r"/jobs/"))
    org.faults.add(Fault.token_error(503, "server_unavailable", "down"))   # the token endpoint only
    org.faults.add(Fault.token_echo())               # a token endpoint that echoes the request
    org.faults.add(Fault.lose_answer(method="PATCH", path=r"/composite/sobjects/OrderItem/"))

``lose_answer`` rules are taken after the handler has carried the request out: the write has
landed, but its answer never reaches the client (a connection reset, a proxy timing out, the
client's read timeout). Over HTTPS the answer is held for ``delay`` seconds, past the client's
timeout; through the in-process transport the client gets a ``ReadTimeout`` at once.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

#: rule kinds answered before the handler runs
REQUEST_KINDS = frozenset({"error", "session_expired", "slow", "call"})
#: rule kinds the record-processing handlers consume
RECORD_KINDS = frozenset({"partial"})
#: rule kinds the OAuth token endpoint answers (no other rule applies to it)
TOKEN_KINDS = frozenset({"token"})
#: in a token fault's message, replaced by the request body as received (form-encoded)
ECHO = "{request}"
#: rule kinds taken after a request was carried out successfully
ANSWER_KINDS = frozenset({"lose_answer"})


@dataclass
class Fault:
    """One fault rule; build it with the class methods below."""

    kind: str
    method: str = "*"
    path: str = ""
    times: int | None = 1
    skip: int = 0
    status: int = 0
    error_code: str = ""
    message: str = ""
    delay: float = 0.0
    #: record positions that fail (record-level kinds)
    records: tuple[int, ...] = ()
    #: what a ``call`` rule runs when a request matches, before the request is served
    action: object = None
    fired: int = 0
    seen: int = 0
    _pattern: re.Pattern | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to ``method path`` (before counting skip/times)."""
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        if self._pattern is None:
            self._pattern = re.compile(self.path)
        return self._pattern.search(path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``times`` times."""
        return self.times is not None and self.fired >= self.times

    # --- builders ------------------------------------------------------------------------------
    @classmethod
    def server_unavailable(cls, *, method: str = "*", path: str = "", times: int | None = 1, skip: int = 0) -> "Fault":
        """HTTP 503 ``SERVER_UNAVAILABLE`` (org maintenance or overload)."""
        return cls("error", method, path, times, skip, 503, "SERVER_UNAVAILABLE",
                   "Server is temporarily unavailable. Please try again later.")

    @classmethod
    def unable_to_lock_row(cls, *, method: str = "*", path: str = "", times: int | None = 1, skip: int = 0) -> "Fault":
        """Whole request fails with 400 ``UNABLE_TO_LOCK_ROW`` (record lock contention)."""
        return cls("error", method, path, times, skip, 400, "UNABLE_TO_LOCK_ROW",
                   "unable to obtain exclusive access to this record or 1 records")

    @classmethod
    def request_limit_exceeded(cls, *, method: str = "*", path: str = "", times: int | None = 1,
                               skip: int = 0) -> "Fault":
        """HTTP 403 ``REQUEST_LIMIT_EXCEEDED`` (samples/error-request-limit-exceeded-403.json)."""
        return cls("error", method, path, times, skip, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    @classmethod
    def error(cls, status: int, error_code: str, message: str, *, method: str = "*", path: str = "",
              times: int | None = 1, skip: int = 0) -> "Fault":
        """Any other whole-request error in Salesforce's error-array shape."""
        return cls("error", method, path, times, skip, status, error_code, message)

    @classmethod
    def session_expired(cls, *, method: str = "*", path: str = "", skip: int = 0) -> "Fault":
        """Expire every session: this and later requests get 401 ``INVALID_SESSION_ID`` until re-auth."""
        return cls("session_expired", method, path, 1, skip)

    @classmethod
    def slow(cls, seconds: float, *, method: str = "*", path: str = "", times: int | None = 1,
             skip: int = 0) -> "Fault":
        """Sleep ``seconds`` before answering (for client timeouts)."""
        return cls("slow", method, path, times, skip, delay=seconds)

    @classmethod
    def call(cls, action, *, method: str = "*", path: str = "", times: int | None = 1, skip: int = 0) -> "Fault":
        """Run ``action()`` when a matching request arrives, then serve it as usual (a test's hook:
        e.g. freeze the client that sent it)."""
        return cls("call", method, path, times, skip, action=action)

    @classmethod
    def token_error(cls, status: int, error: str, description: str, *, times: int | None = 1,
                    skip: int = 0) -> "Fault":
        """The token endpoint answers ``status`` with ``{"error", "error_description"}``."""
        return cls("token", "POST", "/services/oauth2/token", times, skip, status, error, description)

    @classmethod
    def token_echo(cls, *, status: int = 400, times: int | None = None, skip: int = 0) -> "Fault":
        """The token endpoint answers an error that quotes the request body it received, as a
        misconfigured proxy or endpoint does (the body holds the client secret, form-encoded)."""
        return cls("token", "POST", "/services/oauth2/token", times, skip, status, "invalid_request",
                   f"could not process request body: {ECHO}")

    @classmethod
    def lose_answer(cls, *, method: str = "*", path: str = "", times: int | None = 1, skip: int = 0,
                    delay: float = 10.0) -> "Fault":
        """Carry the request out, then lose its answer (held ``delay`` seconds over HTTPS)."""
        return cls("lose_answer", method, path, times, skip, delay=delay)

    @classmethod
    def partial_failure(cls, records: list[int] | tuple[int, ...], *, error_code: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        message: str = "Sandbox fault: record rejected", method: str = "*", path: str = "",
                        times: int | None = 1, skip: int = 0) -> "Fault":
        """Fail the records at these positions in a collection or bulk ingest job; the rest go through."""
        return cls("partial", method, path, times, skip, 0, error_code, message, records=tuple(records))

    @classmethod
    def lock_rows(cls, records: list[int] | tuple[int, ...], **kw) -> "Fault":
        """Per-record ``UNABLE_TO_LOCK_ROW`` in a collection or bulk ingest job."""
        return cls.partial_failure(records, error_code="UNABLE_TO_LOCK_ROW",
                                   message="unable to obtain exclusive access to this record or 1 records", **kw)


class FaultPlan:
    """The org's list of fault rules; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Add a rule (it is returned, so a test can look at ``fired`` later)."""
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str, kinds: frozenset[str]) -> list[Fault]:
        """The rules of ``kinds`` that fire for this request, counting them as fired."""
        out = []
        with self._lock:
            for rule in self._rules:
                if rule.kind not in kinds or rule.exhausted or not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                rule.fired += 1
                out.append(rule)
        return out

    def pending(self) -> list[Fault]:
        """Rules that can still fire."""
        with self._lock:
            return [r for r in self._rules if not r.exhausted]
