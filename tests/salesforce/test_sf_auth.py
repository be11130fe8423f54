"""Token flows against the OAuth token endpoint (shapes from the Salesforce OAuth docs)."""
from __future__ import annotations

import base64
import json
import logging
import socket
from urllib.parse import parse_qs, quote, quote_plus, urlencode

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_support import ACCESS_TOKEN, API, CONSUMER_SECRET, INSTANCE, NOW, TOKEN_URL, token_body

from connector.errors import AuthError, RevsyncError
from connector.salesforce.auth import LOGIN_ATTEMPTS, LOGIN_MAX_WAIT, Authenticator
from connector.salesforce.client import SalesforceClient
from connector.salesforce.errors import (
    AuthenticationFailed,
    CertificateNotTrusted,
    InsecureUrl,
    LoginUnavailable,
)
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
    with pytest.raises(LoginUnavailable) as info:
        Authenticator(cc_settings, requests.Session(), clock, retry).token()
    # the login's own bound, whatever the policy of the calls around it
    assert len(rsps.calls) == LOGIN_ATTEMPTS < retry.max_attempts
    assert len(sleeps) == LOGIN_ATTEMPTS - 1 and max(sleeps) <= LOGIN_MAX_WAIT
    assert "HTTP 503" in str(info.value) and "[salesforce].login_url in test.toml" in str(info.value)
    assert info.value.retries_exhausted


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_one_error_after_a_few_quick_tries(clock, retry, sleeps):
    """Issue 8: an unreachable login_url retried 5 logins inside 5 describe retries, per object."""
    settings = load_settings({"auth": "client_credentials", "login_url": f"https://127.0.0.1:{closed_port()}",
                              "consumer_key": "k"}, source="conf/revsync.toml",
                             environ={"REVSYNC_SF_CONSUMER_SECRET": CONSUMER_SECRET})
    client = SalesforceClient(settings, session=requests.Session(), clock=clock, retry=retry)
    with pytest.raises(LoginUnavailable) as info:
        client.describe("Account")
    assert client._auth.requests == LOGIN_ATTEMPTS  # not LOGIN_ATTEMPTS x the describe's attempts
    assert client.calls_made == 0
    assert sum(sleeps) <= LOGIN_MAX_WAIT * (LOGIN_ATTEMPTS - 1)
    text = str(info.value)
    assert "connection refused" in text and "[salesforce].login_url in conf/revsync.toml" in text
    # the next call does not start a second round of nested retries either
    with pytest.raises(LoginUnavailable):
        client.describe("Contact")
    assert client._auth.requests == 2 * LOGIN_ATTEMPTS


@pytest.mark.parametrize(("status", "body", "hint_part"), [
    (400, {"error": "invalid_client", "error_description": "invalid client credentials"}, "REVSYNC_SF_CONSUMER_SECRET"),
    (400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}, "consumer_key"),
    (401, {"error": "unknown_error", "error_description": "nope"}, "login_url and consumer_key"),
], ids=["invalid-client", "invalid-client-id", "401"])
def test_refused_credentials_are_one_auth_error_without_retry(cc_settings, clock, retry, sleeps, rsps,
                                                              status, body, hint_part):
    rsps.add(responses.POST, TOKEN_URL, status=status, json=body)
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    with pytest.raises(AuthError) as info:
        client.describe("Account")
    assert isinstance(info.value, AuthenticationFailed)
    assert len(rsps.calls) == 1 and sleeps == []
    assert hint_part in str(info.value) and "test.toml" in str(info.value)


def test_an_untrusted_certificate_says_to_set_the_ca_bundle(cc_settings, clock, retry, rsps):
    rsps.add(responses.POST, TOKEN_URL, body=requests.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"))
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    with pytest.raises(CertificateNotTrusted) as info:
        client.describe("Account")
    assert isinstance(info.value, AuthError)
    assert "REQUESTS_CA_BUNDLE" in str(info.value) and "could not be verified" in str(info.value)
    assert len(rsps.calls) == 1  # not retried: no wait fixes a certificate


@pytest.mark.parametrize(("status", "location", "error"), [
    (307, "http://acme.my.salesforce.com/services/oauth2/token", InsecureUrl),
    (302, "http://evil.example/steal", InsecureUrl),
    (308, "https://other.my.salesforce.com/services/oauth2/token", AuthenticationFailed),
], ids=["307-to-http", "302-to-http", "308-to-https"])
def test_a_redirect_at_login_is_never_followed(cc_settings, clock, retry, rsps, status, location, error):
    rsps.add(responses.POST, TOKEN_URL, status=status, headers={"Location": location})
    rsps.add(responses.POST, location, json=token_body("T1"))
    rsps.add(responses.GET, location, json=token_body("T1"))
    with pytest.raises(error) as info:
        Authenticator(cc_settings, requests.Session(), clock, retry).token()
    assert [c.request.url for c in rsps.calls] == [TOKEN_URL]  # the form went nowhere else
    assert location in str(info.value) and "login_url" in str(info.value)
    assert CONSUMER_SECRET not in str(info.value)


@pytest.mark.parametrize("instance_url", ["http://orgname.my.salesforce.com", "ftp://x", "//nohost"],
                         ids=["http", "ftp", "no-scheme"])
def test_an_instance_url_that_is_not_https_is_refused(cc_settings, clock, retry, rsps, instance_url):
    rsps.add(responses.POST, TOKEN_URL, json={**token_body("T1"), "instance_url": instance_url})
    client = SalesforceClient(cc_settings, session=requests.Session(), clock=clock, retry=retry)
    with pytest.raises(InsecureUrl) as info:
        client.describe("Account")
    assert instance_url in str(info.value) and "not an https:// URL" in str(info.value)
    assert len(rsps.calls) == 1  # no API call was made with the token


def test_an_api_redirect_to_http_is_not_followed(client, rsps):
    target = "http://orgname.my.salesforce.com/services/data/v62.0/sobjects/Account/describe/"
    rsps.add(responses.GET, f"{API}/sobjects/Account/describe/", status=301, headers={"Location": target})
    rsps.add(responses.GET, target, json={"name": "Account", "fields": []})
    with pytest.raises(InsecureUrl) as info:
        client.describe("Account")
    assert target in str(info.value)
    assert [c.request.url for c in rsps.calls] == [f"{API}/sobjects/Account/describe/"]


def test_an_api_redirect_to_https_is_followed(client, rsps):
    target = "https://moved.my.salesforce.com/services/data/v62.0/sobjects/Account/describe/"
    rsps.add(responses.GET, f"{API}/sobjects/Account/describe/", status=301, headers={"Location": target})
    rsps.add(responses.GET, target, json={"name": "Account", "fields": []})
    assert client.describe("Account")["name"] == "Account"


NASTY = 'p@ss w0rd+/%"x\\y\'z-9f8e'


def encodings(secret: str) -> list[str]:
    """Every encoding of a secret that must never be shown."""
    forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), quote_plus(secret, safe="/"),
             urlencode({"s": secret})[2:], json.dumps(secret)[1:-1], json.dumps(json.dumps(secret))[1:-1],
             repr(secret)[1:-1], base64.b64encode(secret.encode()).decode()}
    forms |= {f.lower() for f in forms if "%" in f}
    return sorted(forms)


@pytest.mark.parametrize("shape", ["json", "text", "long-text"])
def test_an_echoed_secret_is_masked_in_every_encoding(clock, retry, rsps, caplog, shape):
    caplog.set_level(logging.DEBUG)
    settings = load_settings({"auth": "client_credentials", "login_url": "https://acme.my.salesforce.com",
                              "consumer_key": "3MVG9-key"}, source="test.toml",
                             environ={"REVSYNC_SF_CONSUMER_SECRET": NASTY})

    def echo(request):
        body = request.body if isinstance(request.body, str) else request.body.decode()
        if shape == "json":
            return 400, {}, json.dumps({"error": "invalid_request", "error_description": f"bad body {body}"})
        # a long text answer: the secret starts 5 characters before the point where the message is cut
        start = len("bad body ") + body.index("client_secret=") + len("client_secret=")
        pad = "x" * (295 - start) if shape == "long-text" else ""
        return 502, {}, f"bad body {pad}{body} " + " ".join(encodings(NASTY))

    rsps.add_callback(responses.POST, TOKEN_URL, callback=echo)
    with pytest.raises(RevsyncError) as info:
        Authenticator(settings, requests.Session(), clock, retry).token()
    shown = str(info.value) + caplog.text
    assert "client_secret=*****" in shown  # masked (the mask itself may be cut)
    for form_ in encodings(NASTY):
        assert form_ not in shown, form_
    assert "9f8e" not in shown  # not even the tail of a secret cut in two


def test_a_token_endpoint_that_never_answers_is_given_up_after_one_read_timeout(clock, retry, sleeps):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        settings = load_settings({"auth": "client_credentials", "consumer_key": "k", "timeout_seconds": 0.3,
                                  "login_url": f"https://127.0.0.1:{silent.getsockname()[1]}"},
                                 source="c.toml", environ={"REVSYNC_SF_CONSUMER_SECRET": CONSUMER_SECRET})
        auth = Authenticator(settings, requests.Session(), clock, retry)
        with pytest.raises(LoginUnavailable, match=r"did not answer within 0.3s \(tried 1 time\)"):
            auth.token()
    assert auth.requests == 1 and sleeps == []


def test_an_unknown_host_says_so(cc_settings, clock, retry, rsps):
    rsps.add(responses.POST, TOKEN_URL, body=requests.ConnectionError(
        "HTTPSConnectionPool(host='acme.my.salesforce.com', port=443): Max retries exceeded (Caused by "
        "NameResolutionError(\"Failed to resolve 'acme.my.salesforce.com' ([Errno -2] Name or service not known)\"))"))
    with pytest.raises(LoginUnavailable) as info:
        Authenticator(cc_settings, requests.Session(), clock, retry).token()
    assert "the host name does not resolve" in str(info.value) and "login_url" in str(info.value)
    assert len(rsps.calls) == LOGIN_ATTEMPTS


def test_a_ca_bundle_that_is_not_there_is_named(cc_settings, clock, retry, monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    auth = Authenticator(cc_settings, requests.Session(), clock, retry)
    with pytest.raises(CertificateNotTrusted) as info:
        auth.token()
    assert "missing-ca.pem" in str(info.value) and "REQUESTS_CA_BUNDLE" in str(info.value)
    assert auth.requests == 1
