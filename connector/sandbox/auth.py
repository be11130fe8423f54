"""The OAuth 2.0 token endpoint of the sandbox org (``POST /services/oauth2/token``).

Grants (Salesforce Help, "OAuth Authorization Flows"):

- ``client_credentials``: ``client_id``/``client_secret`` in the form or HTTP Basic auth;
- ``password``: client credentials plus ``username``/``password``;
- ``urn:ietf:params:oauth:grant-type:jwt-bearer``: an ``assertion`` JWT with ``iss`` = a configured
  client id, ``sub`` = the configured username, ``aud`` = an accepted audience and an unexpired ``exp``.
  When the org has ``jwt_public_key`` (a PEM public key or certificate) the RS256 signature must verify
  against it; without one the claims are still checked.

Token faults (``Fault.token_error``, ``Fault.token_echo``: see :mod:`connector.sandbox.faults`) answer
before the grant is looked at.

Success is Salesforce's token response: ``access_token``, ``instance_url``, ``id``, ``token_type``,
``issued_at`` (epoch milliseconds as a string) and ``signature`` (Base64 HMAC-SHA256 of ``id`` +
``issued_at`` keyed by the client secret). Failures are 400 ``{"error", "error_description"}``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs

import jwt
from cryptography import x509

from .faults import ECHO, TOKEN_KINDS
from cryptography.hazmat.primitives.serialization import load_pem_public_key

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _fail(error: str, description: str, status: int = 400) -> tuple[int, dict]:
    return status, {"error": error, "error_description": description}


def token_endpoint(org, form_body: str, headers: dict[str, str]) -> tuple[int, dict]:
    """Handle one token request; returns ``(status, JSON body)``."""
    for rule in org.faults.take("POST", "/services/oauth2/token", TOKEN_KINDS):
        return _fail(rule.error_code, rule.message.replace(ECHO, form_body), rule.status)
    form = {k: v[0] for k, v in parse_qs(form_body).items()}
    grant = form.get("grant_type")
    client_id, secret = form.get("client_id"), form.get("client_secret")
    basic = headers.get("Authorization", "")
    if basic.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return _fail("invalid_client", "invalid client credentials")
    cfg = org.config
    if grant in ("client_credentials", "password"):
        if client_id not in cfg.clients:
            return _fail("invalid_client_id", "client identifier invalid")
        if not _same(cfg.clients[client_id], secret):
            return _fail("invalid_client", "invalid client credentials")
        if grant == "password" and (form.get("username") != cfg.username or
                                    not _same(cfg.password, form.get("password"))):
            return _fail("invalid_grant", "authentication failure")
        return 200, _token_response(org, client_id, cfg.clients[client_id])
    if grant == JWT_BEARER:
        return _jwt_grant(org, form.get("assertion") or "")
    return _fail("unsupported_grant_type", "grant type not supported")


def _same(expected: str, given: str | None) -> bool:
    # compared as UTF-8 bytes: compare_digest refuses str with non-ASCII characters
    return hmac.compare_digest(expected.encode("utf-8"), (given or "").encode("utf-8"))


def _jwt_grant(org, assertion: str) -> tuple[int, dict]:
    cfg = org.config
    try:
        if cfg.jwt_public_key:
            key = _public_key(cfg.jwt_public_key)
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=list(cfg.jwt_audiences),
                                options={"verify_exp": False, "require": ["iss", "sub", "aud", "exp"]})
        else:
            claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidSignatureError:
        return _fail("invalid_grant", "invalid assertion: signature invalid")
    except jwt.InvalidAudienceError:
        return _fail("invalid_grant", "audience is invalid")
    except jwt.PyJWTError as exc:
        return _fail("invalid_grant", f"invalid assertion: {exc}")
    if claims.get("iss") not in cfg.clients:
        return _fail("invalid_client_id", "client identifier invalid")
    if claims.get("aud") not in cfg.jwt_audiences and not set(claims.get("aud") or []) & set(cfg.jwt_audiences):
        return _fail("invalid_grant", "audience is invalid")
    if claims.get("sub") != cfg.username:
        return _fail("invalid_grant", "user hasn't approved this consumer")
    # Expiry is judged by the org's clock (injectable), not the wall clock, so tests stay deterministic.
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= org.clock.now().timestamp():
        return _fail("invalid_grant", "expired authorization code")
    return 200, _token_response(org, claims["iss"], cfg.clients[claims["iss"]])


def _public_key(pem: str):
    data = pem.encode("ascii")
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return load_pem_public_key(data)


def _token_response(org, client_id: str, secret: str) -> dict:
    cfg = org.config
    issued_at = str(int(org.clock.now().timestamp() * 1000))
    identity = f"https://login.salesforce.com/id/{cfg.org_id}/{org.user_id}"
    signature = base64.b64encode(hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest())
    return {
        "access_token": org.issue_token(client_id),
        "instance_url": cfg.instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature.decode("ascii"),
    }
