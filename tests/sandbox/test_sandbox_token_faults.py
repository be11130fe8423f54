"""Faults of the OAuth token endpoint: an error answer, and an answer that echoes the request."""
from __future__ import annotations

from urllib.parse import quote_plus

from connector.sandbox.faults import Fault
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.transport import sandbox_session
from sandbox_support import API, BASE

TOKEN = BASE + "/services/oauth2/token"
SECRET = "p@ss w0rd+/%\"Ü"


def grant(secret: str = SECRET) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": "revsync-test-client", "client_secret": secret}


def test_a_secret_with_non_ascii_characters_is_accepted_and_checked(clock):
    org = Org(OrgConfig(clients={"revsync-test-client": SECRET}), clock=clock)
    s = sandbox_session(org)
    assert s.post(TOKEN, data=grant()).status_code == 200
    assert s.post(TOKEN, data=grant(SECRET + "x")).json()["error"] == "invalid_client"


def test_token_error_answers_the_token_endpoint_only(clock):
    org = Org(OrgConfig(clients={"revsync-test-client": SECRET}), clock=clock)
    rule = org.faults.add(Fault.token_error(503, "server_unavailable", "try later", times=2))
    s = sandbox_session(org)
    answers = [s.post(TOKEN, data=grant()) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200] and rule.fired == 2
    assert answers[0].json() == {"error": "server_unavailable", "error_description": "try later"}
    token = answers[2].json()["access_token"]
    assert s.get(API + "/limits", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_token_echo_quotes_the_form_it_received(clock):
    org = Org(OrgConfig(clients={"revsync-test-client": SECRET}), clock=clock)
    org.faults.add(Fault.token_echo(skip=1))
    s = sandbox_session(org)
    assert s.post(TOKEN, data=grant()).status_code == 200  # skipped
    echoed = s.post(TOKEN, data=grant())
    assert echoed.status_code == 400 and echoed.json()["error"] == "invalid_request"
    assert f"client_secret={quote_plus(SECRET)}" in echoed.json()["error_description"]
