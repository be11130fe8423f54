"""Salesforce failures, sorted by what the caller should do, and the one translation point.

Every exception that simple-salesforce, requests or the org itself can produce is turned into one of
these at the adapter boundary (`translate`), keeping `__cause__` and Salesforce's `errorCode`.
simple-salesforce has two unrelated exception roots (`SalesforceError` for REST and
`SalesforceOperationError` for Bulk 2.0); `translate` handles both, and anything else it does not
recognise is still wrapped rather than let through.

Every message is passed through the process's redactor (connector.logs.REDACTOR) when the error is
made, so a body that echoes a secret never reaches a log, a stored error or the terminal.
Login failures no wait can fix (refused credentials, an untrusted certificate, a URL that is not
https) are `AuthError`s, so the daemon can stop with its own exit code.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from connector.errors import AuthError, FatalError, RevsyncError, SkippableError, TransientError
from connector.logs import REDACTOR

#: How long to wait before trying again once the org's daily API limit is hit. The limit is a
#: rolling 24-hour window, so capacity comes back gradually as old calls age out; an hour is a
#: reasonable first retry, and the whole allowance is back 24 hours after the burst.
LIMIT_RETRY_AFTER = dt.timedelta(hours=1)
ROLLING_WINDOW = dt.timedelta(hours=24)


class SalesforceFailure(RevsyncError):
    """Mixin data every Salesforce error carries: HTTP status, Salesforce errorCode and fields."""

    status: int | None = None
    error_code: str | None = None
    fields: tuple[str, ...] = ()

    def _set(self, status: int | None, error_code: str | None, fields: tuple[str, ...]) -> None:
        if self.hint:
            self.hint = REDACTOR.redact(self.hint)
        self.status = status
        self.error_code = error_code
        self.fields = fields


class SalesforceRequestFailed(SalesforceFailure, FatalError):
    """The org refused or could not serve a request, and repeating it will not help."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None,
                 fields: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(REDACTOR.redact(message), hint=hint)
        self._set(status, error_code, fields)


class RequestRejected(SalesforceRequestFailed):
    """400/300/409…: the request itself is wrong (bad SOQL, unknown field, bad id)."""


class NotFound(RequestRejected, LookupError):
    """404: the object, record or resource does not exist (or is not visible to the user).

    Also a LookupError, so code outside the adapter (mapping validation) can tell "not there" from
    every other failure without importing Salesforce code.
    """


class RequestRefused(SalesforceRequestFailed):
    """403 other than the API limit: the integration user lacks a permission."""


class AuthenticationFailed(SalesforceRequestFailed, AuthError):
    """The token endpoint refused the credentials, or a fresh token was refused too."""


class CertificateNotTrusted(SalesforceRequestFailed, AuthError):
    """TLS failed: the server's certificate does not verify against the trusted CAs (or it is not TLS)."""


class InsecureUrl(SalesforceRequestFailed, AuthError):
    """A URL that is not https:// was given back by Salesforce (instance_url, a redirect): refused."""


class SessionExpired(SalesforceRequestFailed):
    """401 INVALID_SESSION_ID: the access token expired; the transport re-authenticates once."""


class BulkJobFailed(SalesforceRequestFailed):
    """A Bulk API 2.0 job ended Failed or Aborted, or the Bulk client reported an error."""

    def __init__(self, message: str, *, job_id: str | None = None, state: str | None = None,
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.job_id = job_id
        self.state = state


class UnexpectedResponse(SalesforceRequestFailed):
    """The org answered with something this client does not understand."""


class ApiLimitReached(SalesforceRequestFailed):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily API allowance is spent; stop, keep the cursor."""

    def __init__(self, message: str, *, retry_after: dt.datetime, status: int | None = 403,
                 error_code: str | None = "REQUEST_LIMIT_EXCEEDED"):
        hint = (f"Stop here with the cursor saved and run again after {_utc(retry_after)}. The daily "
                "API limit counts calls over a rolling 24-hour window, so capacity returns as "
                "older calls age out (see Setup > Company Information > API Requests, Last 24 Hours).")
        super().__init__(message, status=status, error_code=error_code, hint=hint)
        self.retry_after = retry_after


class ApiBudgetExhausted(FatalError):
    """This connector's share of the org's daily API allowance is used up; stop cleanly."""

    def __init__(self, *, used: int, limit: int, share: Decimal, retry_after: dt.datetime):
        threshold = int(share * limit)
        message = (f"Salesforce API budget reached: the org has used {used} of its {limit} daily API "
                   f"calls, and this connector stops at {share:.0%} ({threshold}) to leave room for "
                   "other integrations. Nothing more was sent.")
        hint = (f"Run again after {_utc(retry_after)}: the daily limit is a rolling 24-hour window, "
                "so usage falls as older calls age out. To allow more, raise "
                "[salesforce].api_budget_share.")
        super().__init__(message, hint=hint)
        self.used = used
        self.limit = limit
        self.share = share
        self.retry_after = retry_after


class SalesforceTransient(SalesforceFailure, TransientError):
    """A failure that may pass if the same call is made again a little later."""

    #: False when the request may already have been carried out, so repeating it could do it twice
    retry_safe: bool = True

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None,
                 fields: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(REDACTOR.redact(message), hint=hint)
        self._set(status, error_code, fields)


class ServerUnavailable(SalesforceTransient):
    """503 / SERVER_UNAVAILABLE (or a 502/504 gateway error): the org is busy or in maintenance."""


class RowLocked(SalesforceTransient):
    """UNABLE_TO_LOCK_ROW: another transaction holds the record; retry with backoff."""


class ConnectionFailed(SalesforceTransient):
    """The network failed or the call timed out before Salesforce answered."""


class LoginUnavailable(SalesforceTransient):
    """The token endpoint could not be reached or was down, after the login's own few retries.

    Transient (a later run may succeed), but never retried again by an enclosing policy: the login
    already spent its bounded attempts.
    """

    retries_exhausted = True


class BulkJobStillRunning(SalesforceTransient):
    """A bulk job did not finish within the client's bulk timeout; it goes on in Salesforce."""

    #: waiting again at once would only repeat the timeout; the caller resumes from the job id later
    retry_safe = False

    def __init__(self, message: str, *, job_id: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.job_id = job_id


class RecordRejected(SalesforceFailure, SkippableError):
    """Salesforce refused one record on a single-record write (validation rule, bad value…)."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None,
                 fields: tuple[str, ...] = (), hint: str | None = None):
        super().__init__(REDACTOR.redact(message), hint=hint)
        self._set(status, error_code, fields)


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def parse_error_body(content: Any) -> tuple[str | None, str, tuple[str, ...]]:
    """(errorCode, message, fields) from a Salesforce error body: a list, an OAuth dict, or text."""
    if isinstance(content, (bytes, bytearray)):
        content = content.decode("utf-8", "replace")
    if isinstance(content, str):
        # masked before anything is cut, so no part of an echoed secret survives a truncation
        content = REDACTOR.redact(content)
        try:
            content = json.loads(content)
        except ValueError:
            return None, content.strip()[:500], ()
    if isinstance(content, list) and content and isinstance(content[0], dict):
        # REST errors are a list of {message, errorCode, fields}; report the first code and every
        # message (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm)
        first = content[0]
        messages = "; ".join(str(e.get("message", "")).strip() for e in content if isinstance(e, dict))
        fields = tuple(str(f) for f in (first.get("fields") or ()))
        return first.get("errorCode") or first.get("statusCode"), messages, fields
    if isinstance(content, dict):
        if "error" in content:  # OAuth token endpoint: {"error": ..., "error_description": ...}
            return str(content["error"]), str(content.get("error_description", "")), ()
        if "errorCode" in content:
            return str(content["errorCode"]), str(content.get("message", "")), ()
    return None, str(content)[:500], ()


def _codes(content: Any) -> set[str]:
    if isinstance(content, (bytes, bytearray, str)):
        try:
            content = json.loads(content)
        except ValueError:
            return set()
    if isinstance(content, list):
        return {str(e.get("errorCode") or e.get("statusCode")) for e in content if isinstance(e, dict)}
    return set()


def from_response(status: int, content: Any, *, what: str, now: dt.datetime,
                  record_level: bool = False) -> RevsyncError:
    """The error for an HTTP error answer from the org; `record_level` marks single-record writes."""
    code, message, fields = parse_error_body(content)
    codes = _codes(content) | ({code} if code else set())
    text = f"Salesforce {what} failed: HTTP {status}" + (f" {code}" if code else "") + (
        f": {message}" if message else "")
    kwargs: dict[str, Any] = {"status": status, "error_code": code, "fields": fields}
    if "UNABLE_TO_LOCK_ROW" in codes:
        return RowLocked(text, **kwargs)
    if status == 503 or "SERVER_UNAVAILABLE" in codes or status in (502, 504):
        return ServerUnavailable(text, **kwargs)
    if status == 401:
        if code == "INVALID_SESSION_ID":
            return SessionExpired(text, **kwargs)
        return AuthenticationFailed(text, hint="Check the [salesforce] auth settings.", **kwargs)
    if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        return ApiLimitReached(text, retry_after=now + LIMIT_RETRY_AFTER, status=status)
    if status == 403:
        return RequestRefused(text, hint="Give the integration user the missing permission "
                                         "(object, field or API access).", **kwargs)
    if status == 404:
        return NotFound(text, **kwargs)
    if record_level and status in (300, 400):
        return RecordRejected(text, **kwargs)
    return RequestRejected(text, **kwargs)


def translate(exc: BaseException, *, what: str, now: dt.datetime,
              record_level: bool = False) -> RevsyncError:
    """Our error for any exception raised while talking to Salesforce (library or network)."""
    if isinstance(exc, RevsyncError):
        return exc
    # here, not at the top: importing requests and simple-salesforce (and through it the SOAP
    # client zeep) is a fifth of a command's start-up, which no command needs until it talks to
    # Salesforce (issue 11); an exception of either means it is loaded already
    import requests
    from simple_salesforce.exceptions import (
        SalesforceAuthenticationFailed,
        SalesforceError,
        SalesforceOperationError,
    )
    if isinstance(exc, SalesforceAuthenticationFailed):
        return AuthenticationFailed(f"Salesforce {what} failed: authentication refused ({exc.code})",
                                    status=exc.status, error_code=str(exc.code) if exc.code else None)
    if isinstance(exc, SalesforceError):
        return from_response(exc.status, exc.content, what=what, now=now, record_level=record_level)
    if isinstance(exc, SalesforceOperationError):
        return BulkJobFailed(f"Salesforce {what} failed in the Bulk API client: {exc}")
    if isinstance(exc, requests.exceptions.SSLError):
        return tls_error(exc, what)
    if isinstance(exc, requests.Timeout):
        return ConnectionFailed(f"Salesforce {what} timed out: {type(exc).__name__}")
    if isinstance(exc, requests.ConnectionError):
        return ConnectionFailed(f"Salesforce {what} could not connect: {type(exc).__name__}")
    if isinstance(exc, requests.RequestException):
        return UnexpectedResponse(f"Salesforce {what} failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # a body that is not the JSON it claims to be
        return UnexpectedResponse(f"Salesforce {what} returned a body that could not be parsed: {exc}")
    return UnexpectedResponse(f"Salesforce {what} failed: {type(exc).__name__}: {exc}")


def tls_error(exc: BaseException, what: str) -> CertificateNotTrusted:
    """The error for a TLS failure: what failed, and that REQUESTS_CA_BUNDLE names the CAs to trust."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        reason = "the server's TLS certificate could not be verified"
    elif "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        reason = "the server does not speak TLS on that port"
    else:
        reason = f"the TLS handshake failed ({type(exc).__name__})"
    return CertificateNotTrusted(
        f"Salesforce {what} failed: {reason}.",
        hint="TLS is always verified. If a proxy or a private CA signs the certificate, set "
             "REQUESTS_CA_BUNDLE to a PEM file of the CA certificates to trust; otherwise check the URL.")
