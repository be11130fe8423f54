"""The read-only web console: sync health, outbox, failed jobs, quarantine and ARR, as HTML pages.

A WSGI application (cheroot serves it: mounted at `/console` by the daemon's HTTP server, or on
its own by `revsync console`). Every page is rendered on the server from the report functions of
connector.reports; no JavaScript, no file from elsewhere (the ARR chart is inline SVG). Everything
that comes from the store (names come from Salesforce) is HTML-escaped.

Access: on a loopback address nothing is asked. Anywhere else the console needs a token from the
environment (REVSYNC_CONSOLE_TOKEN): a request gives it as `Authorization: Bearer <token>`, or
once as `?token=<token>`, which sets an HttpOnly cookie (a digest of the token, not the token)
and redirects to the same page without it. Tokens are compared in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from http.cookies import SimpleCookie
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlencode

from sqlalchemy import Engine

from connector.clock import Clock
from connector.console import pages

log = logging.getLogger(__name__)

TOKEN_ENV = "REVSYNC_CONSOLE_TOKEN"
PREFIX = "/console"
COOKIE = "revsync_console"
#: a token shorter than this is refused (it could be guessed)
MIN_TOKEN_LENGTH = 16

StartResponse = Callable[[str, list[tuple[str, str]]], object]

HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
           ("Referrer-Policy", "no-referrer"),
           # nothing runs and nothing is fetched: styles and the SVG chart are inline
           ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                      "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from_env(environ: dict | None = None) -> str | None:
    """The console token from the environment, or None when unset or empty."""
    value = (environ if environ is not None else os.environ).get(TOKEN_ENV, "").strip()
    return value or None


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"revsync console session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class ConsoleApp:
    """The console's WSGI application; paths under `/console`.

    `calendar`: the fiscal calendar for ARR by quarter or year; None reads it from the store
    (a standard calendar's start month, or the Salesforce Period records taken in).
    `token`: required on every request when set. `disabled`: a reason to answer 403 to everything
    (the daemon's server on a non-loopback host without a token).
    """

    def __init__(self, store: Engine, clock: Clock, *, calendar=None, token: str | None = None,
                 disabled: str | None = None):
        self.store = store
        self.clock = clock
        self.calendar = calendar
        self.token = token
        self.disabled = disabled

    def __call__(self, environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("", "/"):
            return self._redirect(start_response, f"{PREFIX}/")
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return self._page(start_response, "404 Not Found", pages.message("Not found", "No such page."))
        if self.disabled:
            return self._page(start_response, "403 Forbidden", pages.message("Console off", self.disabled))
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._page(start_response, "405 Method Not Allowed",
                              pages.message("Read-only", "The console only shows; use GET."), [("Allow", "GET, HEAD")])
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=False)
        if self.token is not None:
            answer = self._check_token(environ, start_response, path, query)
            if answer is not None:
                return answer
        page = path[len(PREFIX):].strip("/") or "health"
        render = pages.PAGES.get(page)
        if render is None:
            return self._page(start_response, "404 Not Found", pages.message("Not found", "No such page."))
        params = {k: v[-1] for k, v in query.items() if k != "token"}
        try:
            status, body = render(self, params)
        except Exception:
            log.exception("console: the page %s failed", page)
            return self._page(start_response, "500 Internal Server Error",
                              pages.message("Error", "This page could not be drawn; the log says why."))
        return self._page(start_response, status, body)

    def _check_token(self, environ, start_response, path, query) -> Iterable[bytes] | None:
        assert self.token is not None
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("Bearer ") and _same(auth[len("Bearer "):].strip(), self.token):
            return None
        given = query.get("token")
        if given:
            if not _same(given[-1], self.token):
                return self._unauthorized(start_response, "The token is wrong.")
            secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
            rest = urlencode([(k, v) for k, values in query.items() if k != "token" for v in values])
            return self._redirect(start_response, path + (f"?{rest}" if rest else ""),
                                  [("Set-Cookie", f"{COOKIE}={_cookie_value(self.token)}; Path={PREFIX}; "
                                                  f"HttpOnly; SameSite=Strict{secure}")])
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:
            cookie = SimpleCookie()
        if COOKIE in cookie and _same(cookie[COOKIE].value, _cookie_value(self.token)):
            return None
        return self._unauthorized(start_response, "This console needs its token: open it once as "
                                  f"{PREFIX}/?token=… (the value of {TOKEN_ENV}), or send "
                                  "`Authorization: Bearer …`.")

    def _unauthorized(self, start_response, text: str):
        return self._page(start_response, "401 Unauthorized", pages.message("Token needed", text),
                          [("WWW-Authenticate", 'Bearer realm="revsync console"')])

    @staticmethod
    def _redirect(start_response, location: str, extra: list[tuple[str, str]] = ()):
        start_response("303 See Other", [("Location", location), ("Content-Length", "0"), *HEADERS, *extra])
        return [b""]

    @staticmethod
    def _page(start_response, status: str, body: str, extra: Iterable[tuple[str, str]] = ()):
        data = body.encode("utf-8")
        start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                                *HEADERS, *extra])
        return [data]


def for_server(host: str, store: Engine, clock: Clock, *, calendar=None,
               environ: dict | None = None) -> ConsoleApp:
    """The console the daemon's HTTP server mounts: open on loopback; elsewhere only with a token.

    Without a token on a non-loopback host the daemon still starts (Outbound Messages need the
    port) and the console answers 403 saying how to turn it on.
    """
    token = token_from_env(environ)
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        log.warning("console off: %s is shorter than %d characters", TOKEN_ENV, MIN_TOKEN_LENGTH)
        return ConsoleApp(store, clock, calendar=calendar, disabled=f"{TOKEN_ENV} is shorter than "
                          f"{MIN_TOKEN_LENGTH} characters; set a longer one and restart.")
    if token is None and not is_loopback(host):
        return ConsoleApp(store, clock, calendar=calendar, disabled=(
            f"The server listens on {host}, not on loopback: set {TOKEN_ENV} in the daemon's environment "
            "(a long random value) and restart to open the console."))
    return ConsoleApp(store, clock, calendar=calendar, token=token)
