"""Access tokens from `{login_url}/services/oauth2/token`, by the auth mode the settings name.

- `jwt`: OAuth 2.0 JWT bearer flow; an RS256 assertion with iss = consumer key, sub = username,
  aud = login_url and a short exp (Salesforce accepts at most 3 minutes).
- `client_credentials`: OAuth 2.0 client credentials flow (consumer key + secret, My Domain URL).
- `session`: an access token and instance URL given from outside; it cannot be renewed here.
- `password`: the OAuth username-password flow. Works, but Salesforce is retiring username-password
  logins, so every login logs a warning.

Token endpoint errors (`invalid_grant`, `invalid_client_id`…) become AuthenticationFailed with a
hint; secret values are never part of a message.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from pydantic import SecretStr

from connector.clock import Clock
from connector.errors import RevsyncError
from connector.salesforce.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerUnavailable,
    UnexpectedResponse,
    parse_error_body,
)
from connector.salesforce.retry import RetryPolicy
from connector.salesforce.settings import ENV_ACCESS_TOKEN, ENV_PRIVATE_KEY, SalesforceSettings

log = logging.getLogger(__name__)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Salesforce rejects JWT assertions whose exp is more than 3 minutes ahead.
JWT_LIFETIME = dt.timedelta(minutes=3)

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


class Authenticator:
    """Gets and renews access tokens for one org, by the mode the settings name."""

    def __init__(self, settings: SalesforceSettings, session: requests.Session, clock: Clock,
                 retry: RetryPolicy | None = None):
        self._settings = settings
        self._session = session
        self._clock = clock
        self._retry = retry or RetryPolicy()
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
        return self._retry.call(lambda: self._post(form), what="login")

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
        now = self._clock.now()
        claims = {"iss": s.consumer_key, "sub": s.username, "aud": s.login_url.rstrip("/"),
                  "exp": int((now + JWT_LIFETIME).timestamp())}
        try:
            return jwt.encode(claims, pem, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            # the exception text is not shown: it could quote the key material
            raise AuthenticationFailed(
                f"The file named by {ENV_PRIVATE_KEY} ({path}) is not a usable RSA private key "
                "in PEM format.") from None

    def _post(self, form: dict[str, str]) -> Token:
        self.requests += 1
        try:
            response = self._session.post(self._settings.token_url, data=form,
                                          headers={"Accept": "application/json"},
                                          timeout=self._settings.timeout_seconds)
        except requests.Timeout:
            raise ConnectionFailed("Salesforce login timed out") from None
        except requests.ConnectionError as exc:
            raise ConnectionFailed(f"Salesforce login could not connect to {self._settings.login_url}: "
                                   f"{type(exc).__name__}") from None
        if response.status_code >= 400:
            raise self._error(response)
        try:
            body: Any = json.loads(response.content)
        except ValueError:
            raise UnexpectedResponse("Salesforce login answered with a body that is not JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        instance_url = body.get("instance_url") if isinstance(body, dict) else None
        if not token or not instance_url or urlsplit(instance_url).scheme not in ("https", "http"):
            raise UnexpectedResponse("Salesforce login answered without access_token and instance_url")
        identity = body.get("id") if isinstance(body, dict) else None
        user_id = str(identity).rstrip("/").rsplit("/", 1)[-1] if identity else None
        return Token(SecretStr(token), instance_url.rstrip("/"), self._clock.now(), user_id)

    def _error(self, response: requests.Response) -> RevsyncError:
        code, description, _ = parse_error_body(response.content)
        description = self._scrub(description)
        text = f"Salesforce login ({self._settings.auth}) failed: HTTP {response.status_code}" + (
            f" {code}" if code else "") + (f": {description}" if description else "")
        if response.status_code >= 500 or code == "rate_limit_exceeded":
            return ServerUnavailable(text, status=response.status_code, error_code=code)
        hint = _HINTS.get(code or "") or (_GRANT_HINTS.get(self._settings.auth) if code == "invalid_grant" else None)
        return AuthenticationFailed(text, status=response.status_code, error_code=code,
                                    hint=hint or "Check the [salesforce] auth settings and secrets.")

    def _scrub(self, text: str) -> str:
        # Salesforce does not echo secrets, but a proxy or a misconfigured endpoint might.
        secrets = self._settings.secrets
        for secret in (secrets.consumer_secret, secrets.password, secrets.access_token):
            value = _reveal(secret)
            if value and value in text:
                text = text.replace(value, "********")
        return text


def _reveal(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""
