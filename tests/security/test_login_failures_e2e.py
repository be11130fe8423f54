"""Issue 8, from the user's side: every command that logs in refuses plain http, and ends a failed
login in one error, in seconds, saying what to check; the secret never shows on the way."""
from __future__ import annotations

import socket
import time

import pytest
from security_support import LOGIN_COMMANDS, SECRET, SecretSite, closed_port, leaks, set_login_url

from e2e_support import worked_seed

COMMANDS = pytest.mark.parametrize("command", list(LOGIN_COMMANDS))
#: a failed login, retries included, is reported within this many seconds (process start included)
BOUND_SECONDS = 25


@pytest.fixture(scope="module")
def org_site(tmp_path_factory):
    s = SecretSite(tmp_path_factory.mktemp("login-failures"), worked_seed())
    yield s
    s.stop()


@pytest.fixture
def fresh(org_site):
    """The module's site, with its config, faults and request log as they were at the start."""
    config = (org_site.root / "config.toml").read_text()
    instance_url = org_site.org.config.instance_url
    org_site.org.faults.clear()
    org_site.org.request_log.clear()
    yield org_site
    (org_site.root / "config.toml").write_text(config)
    org_site.org.config.instance_url = instance_url
    org_site.org.faults.clear()
    org_site.secret = SECRET


def assert_one_clean_error(result, site) -> str:
    """The run failed with one error, no traceback and no secret; returns stderr."""
    assert result.code != 0, result
    assert "Traceback" not in result.stderr, result
    assert result.stderr.count("error: ") == 1, result
    assert "has no object" not in result.stderr + result.stdout, result
    assert leaks(result.stdout + result.stderr, site.secrets()) == [], result
    return result.stderr


@COMMANDS
def test_a_plain_http_login_url_is_refused_before_anything_is_sent(fresh, command):
    with socket.socket() as listener:  # a plain-http "org" that must never be contacted
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        set_login_url(fresh, f"http://127.0.0.1:{port}")
        result = fresh.revsync(*LOGIN_COMMANDS[command])
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected: the secret was not sent in clear text
    assert result.code == 2, result
    assert "[salesforce].login_url: must be an https:// URL" in result.stderr
    assert "config.toml" in result.stderr and "no opt-out" in result.stderr
    assert "Traceback" not in result.stderr


@COMMANDS
def test_an_unreachable_login_url_is_one_error_within_seconds(fresh, command):
    set_login_url(fresh, f"https://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    result = fresh.revsync(*LOGIN_COMMANDS[command], timeout=120)
    elapsed = time.monotonic() - started
    stderr = assert_one_clean_error(result, fresh)
    assert elapsed < BOUND_SECONDS, f"{elapsed:.1f}s\n{result}"
    assert "connection refused" in stderr and "tried 3 times" in stderr
    assert "[salesforce].login_url in" in stderr and "config.toml" in stderr


@COMMANDS
def test_a_wrong_secret_is_one_error_naming_what_to_check(fresh, command):
    fresh.secret = "n0t the s3cret+/%@"
    started = time.monotonic()
    result = fresh.revsync(*LOGIN_COMMANDS[command])
    stderr = assert_one_clean_error(result, fresh)
    assert time.monotonic() - started < BOUND_SECONDS
    assert "invalid_client" in stderr and "REVSYNC_SF_CONSUMER_SECRET" in stderr and "consumer_key" in stderr
    assert fresh.token_requests() == 1  # refused credentials are not retried
    assert fresh.api_requests() == 0


@COMMANDS
def test_an_untrusted_certificate_says_to_set_requests_ca_bundle(fresh, command, monkeypatch):
    env = fresh.env()
    del env["REQUESTS_CA_BUNDLE"]
    monkeypatch.setattr(fresh, "env", lambda: env)
    result = fresh.revsync(*LOGIN_COMMANDS[command])
    stderr = assert_one_clean_error(result, fresh)
    assert "certificate could not be verified" in stderr and "REQUESTS_CA_BUNDLE" in stderr
    assert fresh.token_requests() == 0  # the secret never left this machine


@COMMANDS
def test_an_instance_url_that_is_not_https_is_refused(fresh, command):
    fresh.org.config.instance_url = fresh.server.url.replace("https://", "http://")
    result = fresh.revsync(*LOGIN_COMMANDS[command])
    stderr = assert_one_clean_error(result, fresh)
    assert "instance_url 'http://" in stderr and "not an https:// URL" in stderr
    assert fresh.token_requests() == 1 and fresh.api_requests() == 0
