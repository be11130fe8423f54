"""Access tokens from `{login_url}/services/oauth2/token`, by the auth mode the settings name.

- `jwt`: OAuth 2.0 JWT bearer flow; an RS256 assertion with iss = consumer key, sub = username,
  aud = login_url and a short exp (Salesforce accepts at most 3 minutes).
- `client_credentials`: OAuth 2.0 client credentials flow (consumer key + secret, My Domain URL).
- `session`: an access token and instance URL given from outside; it cannot be renewed here.
- `password`: the OAuth username-password flow. Works, but Salesforce is retiring username-password
  logins, so every login logs a warning.

A login ends in bounded time, in one error that says what to check:

- refused credentials (`invalid_client`, `invalid_grant`…, any 4xx) are AuthenticationFailed, an
  `AuthError`: permanent, never retried, with a hint naming the keys and secrets to check;
- an untrusted certificate is CertificateNotTrusted (set REQUESTS_CA_BUNDLE), also permanent;
- connection refused, a name that does not resolve, a timeout or a 5xx is transient: retried at most
  `LOGIN_ATTEMPTS` times with waits of a second or two, then LoginUnavailable, which no enclosing
  retry repeats (connector.salesforce.retry);
- a redirect is never followed (the form carries the secret: following a 307 would post it to a place
  nobody configured), and an `instance_url` that is not https:// is refused (InsecureUrl). Salesforce
  documents that "All OAuth endpoints require secure HTTP (HTTPS)" and names the hosts to post to
  (Salesforce Help, "OAuth Endpoints": remoteaccess_oauth_endpoints.htm); it documents no redirect
  from the token endpoint, so a redirect means a wrong login_url or something in between.

Secret values are never part of a message: the secrets, the JWT assertion and each access token
received are registered with the redactor (connector.logs.REDACTOR).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import requests
from pydantic import SecretStr

from connector.clock import Clock
from connector.errors import RevsyncError
from connector.logs import REDACTOR
from connector.salesforce.errors import (
    AuthenticationFailed,
    CertificateNotTrusted,
    ConnectionFailed,
    InsecureUrl,
    LoginUnavailable,
    SalesforceTransient,
    ServerUnavailable,
    UnexpectedResponse,
    parse_error_body,
    tls_error,
)
from connector.salesforce.retry import RetryPolicy
from connector.salesforce.settings import ENV_ACCESS_TOKEN, ENV_PRIVATE_KEY, SalesforceSettings

log = logging.getLogger(__name__)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Salesforce rejects JWT assertions whose exp is more than 3 minutes ahead.
JWT_LIFETIME = dt.timedelta(minutes=3)
#: a login that cannot reach the token endpoint is tried this many times in all, waiting at most
#: LOGIN_MAX_WAIT seconds between tries: a wrong or unreachable login_url is reported in seconds
LOGIN_ATTEMPTS = 3
LOGIN_MAX_WAIT = 2.0
#: seconds to wait for the connection to the token endpoint, and for its answer (a read timeout is
#: not retried): at most about 3 x 5 s + waits for a host that drops packets, 20 s for a silent one
LOGIN_CONNECT_TIMEOUT = 5.0
LOGIN_READ_TIMEOUT = 20.0

PASSWORD_FLOW_WARNING = (
    "Salesforce auth = \"password\": Salesforce is retiring username-password logins (SOAP login() "
    "and the OAuth username-password flow); switch [salesforce].auth to \"jwt\" or "
    "\"client_credentials\" before it stops working.")

_HINTS = {
    "invalid_client_id": "The consumer key is not known to this org: check [salesforce].consumer_key "
                         "and login_url (test.salesforce.com for sandboxes).",
    "invalid_client": "The consumer key or secret is wrong, or the app does not allow this flow: check "
                      "[salesforce].consumer_key and REVSYNC_SF_CONSUMER_SECRET.",
    "invalid_client_credentials": "The consumer secret is wrong: check REVSYNC_SF_CONSUMER_SECRET.",
    "unsupported_grant_type": "This OAuth flow is not enabled for the app: enable it in the app's "
                              "OAuth settings, or choose another [salesforce].auth.",
    "inactive_user": "The integration user is inactive: reactivate it or use another username.",
    "inactive_org": "The org is locked, closed or suspended.",
    "rate_limit_exceeded": "Too many logins in a short time; wait and run again.",
}
_GRANT_HINTS = {
    "jwt": "Check [salesforce].username, that the user is pre-authorized for the app (Admin approved "
           "users + profile or permission set), that the app's certificate matches the key in "
           "REVSYNC_SF_PRIVATE_KEY, and that login_url is https://login.salesforce.com "
           "(https://test.salesforce.com for sandboxes).",
    "client_credentials": "Check that the client credentials flow is enabled on the app and that a "
                          "'Run As' integration user is set.",
    "password": "Check [salesforce].username and REVSYNC_SF_PASSWORD (append the security token "
                "if the org requires one).",
}


@dataclass(frozen=True)
class Token:
    """An access token and the instance it is valid for."""

    access_token: SecretStr = field(repr=False)
    instance_url: str
    issued_at: dt.datetime
    #: the integration user's Id, from the identity URL (`id`) of the token response, when given;
    #: records it last modified are the connector's own writes coming back (echo suppression)
    user_id: str | None = None
    #: the org's Id (00D…), from the same identity URL (`…/id/<org id>/<user id>`): the Pub/Sub API's
    #: `tenantid`
    org_id: str | None = None


class Authenticator:
    """Gets and renews access tokens for one org, by the mode the settings name."""

    def __init__(self, settings: SalesforceSettings, session: requests.Session, clock: Clock,
                 retry: RetryPolicy | None = None):
        self._settings = settings
        self._session = session
        self._clock = clock
        self._retry = (retry or RetryPolicy()).limited(max_attempts=LOGIN_ATTEMPTS, max_wait=LOGIN_MAX_WAIT)
        self._token: Token | None = None
        #: token requests sent, for metrics
        self.requests = 0

    def token(self) -> Token:
        """The current token, logging in first if there is none."""
        if self._token is None:
            self._token = self._login(renewing=False)
        return self._token

    def refresh(self) -> Token:
        """A new token, after Salesforce refused the current one (INVALID_SESSION_ID)."""
        self._token = self._login(renewing=True)
        return self._token

    # -- flows ------------------------------------------------------------------------------

    def _login(self, *, renewing: bool) -> Token:
        mode = self._settings.auth
        if mode == "session":
            return self._given_session(renewing)
        if mode == "password":
            log.warning(PASSWORD_FLOW_WARNING)
        form = self._form()
        before = self.requests
        try:
            return self._retry.call(lambda: self._post(form), what="login")
        except SalesforceTransient as exc:
            raise self._unavailable(exc, self.requests - before) from None

    def _unavailable(self, exc: SalesforceTransient, tries: int) -> LoginUnavailable:
        s = self._settings
        first = str(exc).splitlines()[0]
        return LoginUnavailable(
            f"{first} (tried {tries} time{'s' if tries != 1 else ''}).", status=exc.status, error_code=exc.error_code,
            hint=f"Check [salesforce].login_url in {s.source} ({s.login_url}): it must be your org's "
                 "https:// login or My Domain URL, reachable from this machine (proxy, firewall, DNS). "
                 "If the org is in maintenance, run again later.")

    def _given_session(self, renewing: bool) -> Token:
        secrets = self._settings.secrets
        if renewing or secrets.access_token is None or not self._settings.instance_url:
            raise AuthenticationFailed(
                "Salesforce refused the access token given for auth = \"session\", and this mode "
                "cannot get a new one.",
                hint=f"Set a fresh token in {ENV_ACCESS_TOKEN}, or use auth = \"jwt\" or "
                     "\"client_credentials\" so the connector can renew it.")
        return Token(secrets.access_token, self._settings.instance_url.rstrip("/"), self._clock.now())

    def _form(self) -> dict[str, str]:
        s = self._settings
        secrets = s.secrets
        if s.auth == "jwt":
            return {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        if s.auth == "client_credentials":
            return {"grant_type": "client_credentials", "client_id": s.consumer_key or "",
                    "client_secret": _reveal(secrets.consumer_secret)}
        return {"grant_type": "password", "client_id": s.consumer_key or "",
                "client_secret": _reveal(secrets.consumer_secret),
                "username": s.username or "", "password": _reveal(secrets.password)}

    def _assertion(self) -> str:
        s = self._settings
        path = s.secrets.private_key_path
        try:
            # read on every login so a rotated key is picked up without a restart
            pem = path.read_bytes() if path is not None else b""
        except OSError as exc:
            raise AuthenticationFailed(f"Cannot read the JWT private key named by {ENV_PRIVATE_KEY} "
                                       f"({path}): {exc.strerror}") from None
        for line in pem.decode("ascii", "replace").splitlines():
            if not line.startswith("-----"):
                REDACTOR.register(line.strip())
        now = self._clock.now()
        claims = {"iss": s.consumer_key, "sub": s.username, "aud": s.login_url.rstrip("/"),
                  "exp": int((now + JWT_LIFETIME).timestamp())}
        try:
            assertion = jwt.encode(claims, pem, algorithm="RS256")
            # the assertion is a bearer credential for its 3 minutes: never shown either
            REDACTOR.register(assertion, issued=True)
            return assertion
        except (ValueError, TypeError, jwt.PyJWTError):
            # the exception text is not shown: it could quote the key material
            raise AuthenticationFailed(
                f"The file named by {ENV_PRIVATE_KEY} ({path}) is not a usable RSA private key "
                "in PEM format.") from None

    def _post(self, form: dict[str, str]) -> Token:
        self.requests += 1
        s = self._settings
        connect_timeout = min(LOGIN_CONNECT_TIMEOUT, s.timeout_seconds)
        read_timeout = min(LOGIN_READ_TIMEOUT, s.timeout_seconds)
        try:
            response = self._session.post(s.token_url, data=form, headers={"Accept": "application/json"},
                                          timeout=(connect_timeout, read_timeout), allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            raise tls_error(exc, f"login to {s.login_url}") from None
        except requests.ConnectTimeout:
            raise ConnectionFailed(f"Salesforce login could not connect to {s.login_url} within "
                                   f"{connect_timeout:g}s") from None
        except requests.Timeout:
            # connected, but no answer: waiting again would double the wait for little chance
            error = ConnectionFailed(f"Salesforce login at {s.login_url} did not answer within {read_timeout:g}s")
            error.retry_safe = False
            raise error from None
        except requests.ConnectionError as exc:
            raise ConnectionFailed(f"Salesforce login could not connect to {s.login_url}: "
                                   f"{_connection_reason(exc)}") from None
        except OSError as exc:
            # requests raises a bare OSError when REQUESTS_CA_BUNDLE names a file that is not there
            raise CertificateNotTrusted(
                f"Salesforce login to {s.login_url} could not start: {exc}.",
                hint="Set REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) to a readable PEM file of the CA certificates "
                     "to trust, or unset it to use the default ones.") from None
        if response.is_redirect or 300 <= response.status_code < 400:
            raise self._redirected(response)
        if response.status_code >= 400:
            raise self._error(response)
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            raise UnexpectedResponse("Salesforce login answered with a body that is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        instance_url = body.get("instance_url") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(instance_url, str) or not instance_url:
            raise UnexpectedResponse("Salesforce login answered without access_token and instance_url")
        REDACTOR.register(token, issued=True)
        parts = urlsplit(instance_url)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise InsecureUrl(
                f"Salesforce login at {s.login_url} answered with instance_url {instance_url!r}, which is not "
                "an https:// URL; revsync never sends the access token over plain http, so nothing was sent.",
                hint=f"Check that [salesforce].login_url in {s.source} is your org's real login or My Domain "
                     "URL, not a proxy or a look-alike.")
        identity = body.get("id")
        segments = str(identity).rstrip("/").split("/") if identity else []
        user_id = segments[-1] if segments else None
        org_id = segments[-2] if len(segments) >= 2 and segments[-2].startswith("00D") else None
        return Token(SecretStr(token), instance_url.rstrip("/"), self._clock.now(), user_id, org_id)

    def _redirected(self, response: requests.Response) -> RevsyncError:
        s = self._settings
        location = response.headers.get("Location") or ""
        target = urljoin(s.token_url, location) if location else "(no Location)"
        clear = urlsplit(target).scheme.lower() != "https"
        text = (f"Salesforce login at {s.login_url} answered HTTP {response.status_code}, redirecting to "
                f"{target}; revsync does not follow redirects at login (the request carries the credentials)"
                + (", and never sends them over plain http." if clear else "."))
        hint = (f"Set [salesforce].login_url in {s.source} to your org's https:// login or My Domain URL "
                "(the one the token endpoint answers at without a redirect).")
        if clear:
            return InsecureUrl(text, status=response.status_code, hint=hint)
        return AuthenticationFailed(text, status=response.status_code, hint=hint)

    def _error(self, response: requests.Response) -> RevsyncError:
        # Salesforce does not echo secrets, but a proxy or a misconfigured endpoint might: the body is
        # masked by parse_error_body and the message again by the error itself (REDACTOR).
        code, description, _ = parse_error_body(response.content)
        s = self._settings
        text = f"Salesforce login ({s.auth}) at {s.login_url} failed: HTTP {response.status_code}" + (
            f" {code}" if code else "") + (f": {description[:300]}" if description else "")
        if response.status_code >= 500 or code == "rate_limit_exceeded" or response.status_code == 429:
            return ServerUnavailable(text, status=response.status_code, error_code=code)
        hint = _HINTS.get(code or "") or (_GRANT_HINTS.get(s.auth) if code == "invalid_grant" else None)
        return AuthenticationFailed(text, status=response.status_code, error_code=code,
                                    hint=(hint or _CHECK.get(s.auth, "Check the [salesforce] auth settings and "
                                                                     "secrets.")) + f" ({s.source})")


#: what to check when the token endpoint refuses a login without a known error code
_CHECK = {
    "jwt": "Check [salesforce].login_url, consumer_key and username, and the key in REVSYNC_SF_PRIVATE_KEY.",
    "client_credentials": "Check [salesforce].login_url and consumer_key, and REVSYNC_SF_CONSUMER_SECRET.",
    "password": "Check [salesforce].login_url, consumer_key and username, and REVSYNC_SF_CONSUMER_SECRET "
                "and REVSYNC_SF_PASSWORD.",
}


def _connection_reason(exc: requests.ConnectionError) -> str:
    """A short reason for a failed connection, without the library's nested reprs."""
    text = str(exc)
    for needle, reason in (("Name or service not known", "the host name does not resolve"),
                           ("nodename nor servname", "the host name does not resolve"),
                           ("Temporary failure in name resolution", "the host name does not resolve"),
                           ("getaddrinfo failed", "the host name does not resolve"),
                           ("NameResolution", "the host name does not resolve"),
                           ("Connection refused", "connection refused"),
                           ("Network is unreachable", "the network is unreachable"),
                           ("No route to host", "no route to the host"),
                           ("Connection reset", "the connection was reset"),
                           ("RemoteDisconnected", "the server closed the connection")):
        if needle in text:
            return reason
    return type(exc).__name__


def _reveal(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""
