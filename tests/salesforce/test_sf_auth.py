"""Token flows against the OAuth token endpoint (shapes from the Salesforce OAuth docs)."""
from __future__ import annotations

import logging
from urllib.parse import parse_qs

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_support import ACCESS_TOKEN, CONSUMER_SECRET, INSTANCE, NOW, TOKEN_URL, token_body

from connector.salesforce.auth import Authenticator
from connector.salesforce.errors import AuthenticationFailed, ServerUnavailable
from connector.salesforce.settings import load_settings

PASSWORD = "pa55-VERY-SECRET"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_jwt_bearer_signs_the_documented_claims(tmp_path, rsa_key, clock, retry, rsps):
    pem = tmp_path / "key.pem"
    pem.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    settings = load_settings({"auth": "jwt", "consumer_key": "3MVG9-key", "username": "int@acme.com"},
                             source="c.toml", environ={"REVSYNC_SF_PRIVATE_KEY": str(pem)})
    rsps.add(responses.POST, "https://login.salesforce.com/services/oauth2/token", json=token_body("T1"))
    token = Authenticator(settings, requests.Session(), clock, retry).token()
    assert token.access_token.get_secret_value() == "T1" and token.instance_url == INSTANCE
    sent = form(rsps.calls[0])
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(sent["assertion"], rsa_key.public_key(), algorithms=["RS256"],
                        audience="https://login.salesforce.com", options={"verify_exp": False})
    assert claims == {"iss": "3MVG9-key", "sub": "int@acme.com", "aud": "https://login.salesforce.com",
                      "exp": int(NOW.timestamp()) + 180}


def test_jwt_with_a_file_that_is_not_a_key(tmp_path, clock, retry, rsps):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n")
    settings = load_settings({"auth": "jwt", "consumer_key": "k", "username": "u"}, source="c.toml",
                             environ={"REVSYNC_SF_PRIVATE_KEY": str(pem)})
    with pytest.raises(AuthenticationFailed, match="not a usable RSA private key") as info:
        Authenticator(settings, requests.Session(), clock, retry).token()
    assert "not really" not in str(info.value)
    assert len(rsps.calls) == 0


def test_client_credentials_posts_key_and_secret(cc_settings, clock, retry, rsps):
    rsps.add(responses.POST, TOKEN_URL, json=token_body("T1"))
    token = Authenticator(cc_settings, requests.Session(), clock, retry).token()
    assert token.access_token.get_secret_value() == "T1"
    assert form(rsps.calls[0]) == {"grant_type": "client_credentials", "client_id": "3MVG9-key",
                                   "client_secret": CONSUMER_SECRET}
    assert CONSUMER_SECRET not in repr(token) and "T1" not in repr(token)


def test_password_flow_works_but_warns(clock, retry, rsps, caplog):
    settings = load_settings({"auth": "password", "consumer_key": "k", "username": "u@acme.com"},
                             source="c.toml", environ={"REVSYNC_SF_CONSUMER_SECRET": CONSUMER_SECRET,
                                                       "REVSYNC_SF_PASSWORD": PASSWORD})
    rsps.add(responses.POST, "https://login.salesforce.com/services/oauth2/token", json=token_body("T1"))
    caplog.set_level(logging.DEBUG)
    Authenticator(settings, requests.Session(), clock, retry).token()
    assert form(rsps.calls[0])["grant_type"] == "password"
    assert form(rsps.calls[0])["password"] == PASSWORD
    assert "retiring" in caplog.text
    assert PASSWORD not in caplog.text and CONSUMER_SECRET not in caplog.text


def test_session_mode_needs_no_call_and_cannot_renew(session_settings, clock, retry, rsps):
    auth = Authenticator(session_settings, requests.Session(), clock, retry)
    assert auth.token().access_token.get_secret_value() == ACCESS_TOKEN
    with pytest.raises(AuthenticationFailed, match="REVSYNC_SF_ACCESS_TOKEN") as info:
        auth.refresh()
    assert ACCESS_TOKEN not in str(info.value)
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(("error", "hint_part"), [
    ("invalid_grant", "Run As"),
    ("invalid_client_id", "consumer_key"),
    ("invalid_client", "REVSYNC_SF_CONSUMER_SECRET"),
], ids=["invalid-grant", "invalid-client-id", "invalid-client"])
def test_token_errors_are_fatal_with_a_hint_and_no_secret(cc_settings, clock, retry, rsps, caplog,
                                                          error, hint_part):
    caplog.set_level(logging.DEBUG)
    # a misbehaving proxy echoing the secret must not leak it either
    rsps.add(responses.POST, TOKEN_URL, status=400,
             json={"error": error, "error_description": f"authentication failure {CONSUMER_SECRET}"})
    with pytest.raises(AuthenticationFailed) as info:
        Authenticator(cc_settings, requests.Session(), clock, retry).token()
    assert info.value.error_code == error
    assert hint_part in str(info.value)
    assert CONSUMER_SECRET not in str(info.value) and CONSUMER_SECRET not in caplog.text
    assert len(rsps.calls) == 1  # not retried


def test_token_endpoint_503_is_retried(cc_settings, clock, retry, sleeps, rsps):
    rsps.add(responses.POST, TOKEN_URL, status=503, body="Service Unavailable")
    rsps.add(responses.POST, TOKEN_URL, json=token_body("T1"))
    assert Authenticator(cc_settings, requests.Session(), clock, retry).token().instance_url == INSTANCE
    assert len(rsps.calls) == 2 and len(sleeps) == 1


def test_token_endpoint_keeps_failing(cc_settings, clock, retry, sleeps, rsps):
    rsps.add(responses.POST, TOKEN_URL, status=503, body="down")
    with pytest.raises(ServerUnavailable):
        Authenticator(cc_settings, requests.Session(), clock, retry).token()
    assert len(rsps.calls) == retry.max_attempts
