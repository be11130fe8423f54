"""The [salesforce] table: explicit auth mode, every problem at once, secrets never shown."""
from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from connector.errors import ConfigError
from connector.salesforce.settings import load_settings

SECRET = "hunter2-VERY-SECRET"


def problems(exc: ConfigError) -> dict[str, str]:
    return {p.where: p.message for p in exc.problems}


def test_jwt_reports_every_missing_key_at_once():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "jwt"}, source="/etc/revsync/config.toml", environ={})
    found = problems(info.value)
    assert set(found) == {"[salesforce].consumer_key", "[salesforce].username",
                          "REVSYNC_SF_PRIVATE_KEY (environment)"}
    assert all('auth = "jwt"' in m for m in found.values())
    assert "/etc/revsync/config.toml" in str(info.value)


def test_bad_value_and_missing_secret_are_reported_together():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "session", "instance_url": "https://x.my.salesforce.com",
                       "timeout_seconds": -1, "colour": "blue"}, source="c.toml", environ={})
    found = problems(info.value)
    assert set(found) == {"[salesforce].timeout_seconds", "[salesforce].colour",
                          "REVSYNC_SF_ACCESS_TOKEN (environment)"}
    assert found["[salesforce].colour"] == "unknown key"


def test_auth_mode_is_never_guessed():
    with pytest.raises(ConfigError) as info:
        load_settings({"consumer_key": "k", "username": "u"}, source="c.toml",
                      environ={"REVSYNC_SF_PASSWORD": SECRET})
    assert "[salesforce].auth" in problems(info.value)


def test_secret_in_toml_is_an_error_naming_the_key_but_not_the_value():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "password", "consumer_key": "k", "username": "u", "password": SECRET,
                       "consumer_secret": SECRET}, source="c.toml", environ={})
    found = problems(info.value)
    assert "REVSYNC_SF_PASSWORD" in found["[salesforce].password"]
    assert "REVSYNC_SF_CONSUMER_SECRET" in found["[salesforce].consumer_secret"]
    assert SECRET not in str(info.value)


def test_client_credentials_needs_my_domain():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "client_credentials", "consumer_key": "k"}, source="c.toml",
                      environ={"REVSYNC_SF_CONSUMER_SECRET": SECRET})
    assert "My Domain" in problems(info.value)["[salesforce].login_url"]


@pytest.mark.parametrize("url", ["http://na1.salesforce.com", "http://localhost:8443", "http://127.0.0.1:8999",
                                 "HTTP://acme.my.salesforce.com", "ftp://acme.my.salesforce.com",
                                 "acme.my.salesforce.com"],
                         ids=["http", "http-localhost", "http-loopback", "http-upper", "ftp", "no-scheme"])
@pytest.mark.parametrize("key", ["login_url", "instance_url"])
def test_anything_but_https_is_refused_with_no_exception(url, key):
    table = {"auth": "session", "instance_url": "https://x.my.salesforce.com", key: url}
    with pytest.raises(ConfigError) as info:
        load_settings(table, source="/etc/revsync/config.toml", environ={"REVSYNC_SF_ACCESS_TOKEN": SECRET})
    message = problems(info.value)[f"[salesforce].{key}"]
    assert "must be an https:// URL" in message and "no opt-out" in message
    assert "/etc/revsync/config.toml" in str(info.value)  # the file is named
    assert SECRET not in str(info.value)


def test_credentials_in_a_url_are_refused():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "session", "instance_url": "https://me:pw@x.my.salesforce.com"}, source="c.toml",
                      environ={"REVSYNC_SF_ACCESS_TOKEN": SECRET})
    message = problems(info.value)["[salesforce].instance_url"]
    assert "user name or password" in message and "pw" not in str(info.value).replace("password", "")


def test_defaults_and_secret_never_in_repr(caplog):
    caplog.set_level(logging.DEBUG)
    s = load_settings({"auth": "session", "instance_url": "https://x.my.salesforce.com"},
                      source="c.toml", environ={"REVSYNC_SF_ACCESS_TOKEN": SECRET})
    assert s.login_url == "https://login.salesforce.com"
    assert s.api_version == "62.0"
    assert s.api_budget_share == Decimal("0.80")
    assert s.bulk_threshold == 10_000
    assert s.secrets.access_token.get_secret_value() == SECRET
    for text in (repr(s), str(s), repr(s.secrets), s.model_dump_json(), caplog.text):
        assert SECRET not in text


def test_secrets_file_env_style_and_toml(tmp_path):
    env_file = tmp_path / "sf.env"
    env_file.write_text(f"# secrets\nexport REVSYNC_SF_CONSUMER_SECRET='{SECRET}'\nREVSYNC_SF_PASSWORD=pw\n")
    env_file.chmod(0o600)
    s = load_settings({"auth": "password", "consumer_key": "k", "username": "u",
                       "secrets_file": "sf.env"}, source="c.toml", environ={}, base_dir=tmp_path)
    assert s.secrets.consumer_secret.get_secret_value() == SECRET
    assert s.secrets.password.get_secret_value() == "pw"

    toml_file = tmp_path / "sf.toml"
    toml_file.write_text('REVSYNC_SF_CONSUMER_SECRET = "from-file"\nREVSYNC_SF_PASSWORD = "pw"\n')
    toml_file.chmod(0o600)
    s = load_settings({"auth": "password", "consumer_key": "k", "username": "u",
                       "secrets_file": str(toml_file)}, source="c.toml",
                      environ={"REVSYNC_SF_CONSUMER_SECRET": "from-env"})
    assert s.secrets.consumer_secret.get_secret_value() == "from-env"  # the environment wins


def test_secrets_file_problems_never_echo_lines(tmp_path):
    bad = tmp_path / "sf.env"
    bad.write_text(f"{SECRET}\nREVSYNC_SF_TYPO=x\n")
    bad.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "password", "consumer_key": "k", "username": "u", "secrets_file": str(bad)},
                      source="c.toml", environ={})
    text = str(info.value)
    assert "line 1" in text and "REVSYNC_SF_TYPO" in text
    assert SECRET not in text
    assert "REVSYNC_SF_PASSWORD" in text  # still missing, reported in the same run


def test_jwt_key_file_must_exist(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "jwt", "consumer_key": "k", "username": "u"}, source="c.toml",
                      environ={"REVSYNC_SF_PRIVATE_KEY": str(tmp_path / "missing.pem")})
    assert "not a readable file" in str(info.value)


def test_secrets_file_inline_comments_and_quotes(tmp_path):
    # `KEY=value # comment` is the value alone; a `#` inside quotes, or not after a space, is kept
    env_file = tmp_path / "sf.env"
    env_file.write_text("REVSYNC_SF_CONSUMER_SECRET=s3cret # rotated in May\n"
                        "REVSYNC_SF_PASSWORD=\"pw # with hash\"  # a comment\n"
                        "REVSYNC_SF_ACCESS_TOKEN=tok#en\n")
    env_file.chmod(0o600)
    s = load_settings({"auth": "password", "consumer_key": "k", "username": "u",
                       "secrets_file": str(env_file)}, source="c.toml", environ={})
    assert s.secrets.consumer_secret.get_secret_value() == "s3cret"
    assert s.secrets.password.get_secret_value() == "pw # with hash"
    assert s.secrets.access_token.get_secret_value() == "tok#en"


def test_secrets_file_values_are_not_expanded(tmp_path):
    # a `$` in a secret is a character, not a variable reference
    env_file = tmp_path / "sf.env"
    env_file.write_text("REVSYNC_SF_CONSUMER_SECRET=a${HOME}b\nREVSYNC_SF_PASSWORD='p$w'\n")
    env_file.chmod(0o600)
    s = load_settings({"auth": "password", "consumer_key": "k", "username": "u",
                       "secrets_file": str(env_file)}, source="c.toml", environ={"HOME": "/root"})
    assert s.secrets.consumer_secret.get_secret_value() == "a${HOME}b"
    assert s.secrets.password.get_secret_value() == "p$w"


def test_one_model_per_auth_mode():
    from connector.salesforce.settings import ClientCredentialsSettings, SessionSettings
    s = load_settings({"auth": "session", "instance_url": "https://x.my.salesforce.com"},
                      source="c.toml", environ={"REVSYNC_SF_ACCESS_TOKEN": SECRET})
    assert isinstance(s, SessionSettings)
    s = load_settings({"auth": "client_credentials", "consumer_key": "k",
                       "login_url": "https://acme.my.salesforce.com"},
                      source="c.toml", environ={"REVSYNC_SF_CONSUMER_SECRET": SECRET})
    assert isinstance(s, ClientCredentialsSettings) and s.consumer_key == "k"
    assert s.secrets.consumer_secret.get_secret_value() == SECRET and s.secrets.access_token is None


def test_unknown_auth_mode_still_reports_every_other_problem():
    with pytest.raises(ConfigError) as info:
        load_settings({"auth": "oauth", "timeout_seconds": 0, "colour": "blue",
                       "login_url": "http://acme.my.salesforce.com"}, source="c.toml", environ={})
    found = problems(info.value)
    assert set(found) == {"[salesforce].auth", "[salesforce].timeout_seconds", "[salesforce].colour",
                          "[salesforce].login_url"}
    assert "jwt, client_credentials, session, password" in found["[salesforce].auth"]


def test_an_empty_environment_variable_falls_back_to_the_secrets_file(tmp_path):
    env_file = tmp_path / "sf.env"
    env_file.write_text("REVSYNC_SF_ACCESS_TOKEN=from-file\n")
    env_file.chmod(0o600)
    s = load_settings({"auth": "session", "instance_url": "https://x.my.salesforce.com",
                       "secrets_file": str(env_file)}, source="c.toml", environ={"REVSYNC_SF_ACCESS_TOKEN": ""})
    assert s.secrets.access_token.get_secret_value() == "from-file"


def test_secrets_never_in_the_settings_debug_log(monkeypatch, caplog, tmp_path):
    # pydantic-settings logs what each source found when PYDANTIC_SETTINGS_DEBUG is set, before
    # the values reach the redactor: secrets of their own, not yet registered by other tests
    secret = "debug-log-only-8c1f"
    monkeypatch.setenv("PYDANTIC_SETTINGS_DEBUG", "1")
    caplog.set_level(logging.DEBUG)
    env_file = tmp_path / "sf.env"
    env_file.write_text(f"REVSYNC_SF_PASSWORD={secret}-file\n")
    env_file.chmod(0o600)
    s = load_settings({"auth": "password", "consumer_key": "k", "username": "u", "secrets_file": str(env_file)},
                      source="c.toml", environ={"REVSYNC_SF_CONSUMER_SECRET": secret})
    assert s.secrets.password.get_secret_value() == f"{secret}-file"
    assert "REVSYNC_SF_PASSWORD" in caplog.text  # the debug log was written
    assert secret not in caplog.text
