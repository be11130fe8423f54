"""OAuth grants, session expiry, API limits and injected faults."""
from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.sandbox.faults import Fault
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.transport import sandbox_session
from sandbox_support import API, BASE, sample

TOKEN = BASE + "/services/oauth2/token"


def _key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public.decode()


def test_client_credentials_and_password_grants(org):
    s = sandbox_session(org)
    r = s.post(TOKEN, data={"grant_type": "client_credentials", "client_id": "revsync-test-client",
                            "client_secret": "revsync-test-secret"})
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert body["token_type"] == "Bearer" and body["instance_url"] == BASE and body["issued_at"] == "1672531200000"
    assert s.get(API + "/limits", headers={"Authorization": "Bearer " + body["access_token"]}).status_code == 200
    bad = s.post(TOKEN, data={"grant_type": "client_credentials", "client_id": "revsync-test-client", "client_secret": "x"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    pw = s.post(TOKEN, data={"grant_type": "password", "client_id": "revsync-test-client",
                             "client_secret": "revsync-test-secret", "username": "integration@revsync.test",
                             "password": "wrong"})
    assert pw.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


@pytest.mark.parametrize("case", ["good", "wrong-key", "expired", "wrong-sub", "wrong-aud"])
def test_jwt_bearer_verifies_signature_and_claims(clock, case):
    key, public = _key()
    other, _ = _key()
    org = Org(OrgConfig(jwt_public_key=public), clock=clock)
    now = int(clock.now().timestamp())
    claims = {"iss": "revsync-test-client", "sub": "integration@revsync.test", "aud": "https://login.salesforce.com",
              "exp": now + 180}
    signer = key
    if case == "wrong-key":
        signer = other
    elif case == "expired":
        claims["exp"] = now - 1
    elif case == "wrong-sub":
        claims["sub"] = "someone@else.test"
    elif case == "wrong-aud":
        claims["aud"] = "https://evil.example"
    assertion = jwt.encode(claims, signer, algorithm="RS256")
    r = sandbox_session(org).post(TOKEN, data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                               "assertion": assertion})
    if case == "good":
        assert r.status_code == 200 and org.check_token(r.json()["access_token"])
    else:
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_session_expired_until_reauth(org, sf):
    org.faults.add(Fault.session_expired(path=r"/query"))
    assert sf.get(API + "/limits").status_code == 200
    r = sf.get(API + "/query", params={"q": "SELECT Id FROM Account"})
    assert r.status_code == 401
    assert list(r.json()[0]) == list(sample("error-invalid-session-401.json")[0])
    assert r.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert sf.get(API + "/limits").status_code == 401  # every later call, until a new token
    sf.headers["Authorization"] = "Bearer " + org.issue_token()
    assert sf.get(API + "/limits").status_code == 200


def test_server_unavailable_and_lock_row_then_recover(org, sf):
    org.faults.add(Fault.server_unavailable(path=r"/sobjects/Account$", method="POST", times=2))
    org.faults.add(Fault.unable_to_lock_row(path=r"/sobjects/Account/", method="PATCH"))
    codes = [sf.post(API + "/sobjects/Account", json={"Name": "A"}) for _ in range(3)]
    assert [c.status_code for c in codes] == [503, 503, 201]
    assert codes[0].json()[0]["errorCode"] == "SERVER_UNAVAILABLE" and "Sforce-Limit-Info" in codes[0].headers
    rec = codes[2].json()["id"]
    locked = sf.patch(f"{API}/sobjects/Account/{rec}", json={"Name": "B"})
    assert locked.status_code == 400 and locked.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf.patch(f"{API}/sobjects/Account/{rec}", json={"Name": "B"}).status_code == 204
    assert len(org.records("Account")) == 1


def test_request_limit_fault_and_real_daily_limit(clock):
    org = Org(OrgConfig(daily_api_limit=3), clock=clock)
    sf = sandbox_session(org, token=org.issue_token())
    org.faults.add(Fault.request_limit_exceeded(skip=1))
    assert sf.get(API + "/limits").status_code == 200
    limited = sf.get(API + "/limits")
    assert limited.status_code == 403 and limited.json() == sample("error-request-limit-exceeded-403.json")
    assert [sf.get(API + "/limits").status_code for _ in range(3)] == [200, 200, 403]
    assert sf.get(API + "/limits").headers["Sforce-Limit-Info"] == "api-usage=3/3"


def test_slow_fault_sleeps(org, sf):
    org.faults.add(Fault.slow(0.2, path=r"/limits"))
    start = time.monotonic()
    sf.get(API + "/limits")
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    sf.get(API + "/limits")
    assert time.monotonic() - start < 0.2


def test_request_log_records_method_path_status_time(org, sf, clock):
    clock.advance(dt.timedelta(minutes=1))
    sf.get(API + "/sobjects/Nope")
    entry = org.request_log[-1]
    assert (entry.method, entry.path, entry.status) == ("GET", "/services/data/v60.0/sobjects/Nope", 404)
    assert entry.at == dt.datetime(2023, 1, 1, 0, 1, tzinfo=dt.timezone.utc)
