"""The `[salesforce]` table of the configuration, and the secrets that never live in it.

The auth mode is always explicit (`auth = "jwt" | "client_credentials" | "session" | "password"`);
it is never guessed from which values happen to be set. Secrets come only from the environment
(`REVSYNC_SF_*`) or from the file named by `secrets_file` (TOML, or `KEY=VALUE` lines read as a
.env file by python-dotenv, using the same variable names); the environment wins over the file.
Every problem is collected and reported at once, each naming the key and where it was looked for;
secret values never appear in messages, and every secret found is registered with the process's
redactor (connector.logs.REDACTOR).

`login_url` and `instance_url` must be https:// URLs, with no exception and no opt-out (not even
for localhost): the token request carries the consumer secret, and every call carries the access
token. Salesforce requires HTTPS on all OAuth endpoints (Salesforce Help, "OAuth Endpoints":
https://help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_endpoints.htm).
"""
from __future__ import annotations

import io
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError

from connector.errors import ConfigError, Problem
from connector.logs import REDACTOR

log = logging.getLogger(__name__)

AuthMode = Literal["jwt", "client_credentials", "session", "password"]

ENV_CONSUMER_SECRET = "REVSYNC_SF_CONSUMER_SECRET"
ENV_PRIVATE_KEY = "REVSYNC_SF_PRIVATE_KEY"  # a path to a PEM file, not the key itself
ENV_PASSWORD = "REVSYNC_SF_PASSWORD"
ENV_ACCESS_TOKEN = "REVSYNC_SF_ACCESS_TOKEN"
SECRET_ENV_VARS = (ENV_CONSUMER_SECRET, ENV_PRIVATE_KEY, ENV_PASSWORD, ENV_ACCESS_TOKEN)

#: Keys that look like secrets; finding one in the TOML is an error, whatever its value.
SECRET_KEYS = frozenset({
    "consumer_secret", "client_secret", "private_key", "privatekey", "private_key_pem",
    "password", "security_token", "access_token", "session_id", "token", "refresh_token",
})
SECRET_KEYS_ENV = {
    "consumer_secret": ENV_CONSUMER_SECRET, "client_secret": ENV_CONSUMER_SECRET,
    "private_key": ENV_PRIVATE_KEY, "privatekey": ENV_PRIVATE_KEY, "private_key_pem": ENV_PRIVATE_KEY,
    "password": ENV_PASSWORD, "security_token": ENV_PASSWORD, "access_token": ENV_ACCESS_TOKEN,
    "session_id": ENV_ACCESS_TOKEN, "token": ENV_ACCESS_TOKEN, "refresh_token": ENV_ACCESS_TOKEN,
}

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
#: Pinned so a Salesforce release never changes response shapes under us (Winter '25).
DEFAULT_API_VERSION = "62.0"
_GENERIC_LOGIN_HOSTS = {"login.salesforce.com", "test.salesforce.com"}


class SalesforceSecrets(BaseModel):
    """Secret values for the chosen auth mode; held as SecretStr so they never print."""

    model_config = ConfigDict(frozen=True)

    consumer_secret: SecretStr | None = None
    private_key_path: Path | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None


class SalesforceSettings(BaseModel):
    """Validated `[salesforce]` settings plus the secrets found for them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: AuthMode
    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = Field(default=DEFAULT_API_VERSION, pattern=r"^\d{2,3}\.0$")
    consumer_key: str | None = None
    username: str | None = None
    instance_url: str | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    api_budget_share: Decimal = Field(default=Decimal("0.80"), gt=0, le=1)
    bulk_threshold: int = Field(default=10_000, ge=0)
    #: big-object records the org can hold, all big objects together (connector.capacity): a
    #: default org holds 1,000,000; an add-on licence raises it
    big_object_capacity: int = Field(default=1_000_000, ge=0, strict=True)
    secrets_file: Path | None = None
    secrets: SalesforceSecrets = Field(default_factory=SalesforceSecrets, exclude=True)
    #: the configuration file these settings came from, for messages that name it
    _source: str = PrivateAttr(default="the configuration file")

    @property
    def source(self) -> str:
        """The configuration file the settings were read from (named in error messages)."""
        return self._source

    @property
    def token_url(self) -> str:
        """The OAuth 2.0 token endpoint for this org."""
        return self.login_url.rstrip("/") + "/services/oauth2/token"


def load_settings(table: Mapping[str, Any] | None, *, source: str,
                  environ: Mapping[str, str] | None = None,
                  base_dir: Path | None = None) -> SalesforceSettings:
    """Validate the `[salesforce]` table and find its secrets; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    base_dir = Path.cwd() if base_dir is None else base_dir
    problems: list[Problem] = []
    if table is None:
        raise ConfigError(source, [Problem("[salesforce]", "the table is missing; set at least "
                                                           "`auth` (jwt, client_credentials, session or password)")])
    raw = dict(table)

    for key in sorted(raw):
        if key.lower() in SECRET_KEYS:
            env = SECRET_KEYS_ENV[key.lower()]
            problems.append(Problem(f"[salesforce].{key}",
                                    f"secrets must not be in the configuration file; remove it and set "
                                    f"{env} in the environment or in the secrets_file"))
            del raw[key]

    settings: SalesforceSettings | None = None
    bad: set[str] = set()
    try:
        settings = SalesforceSettings.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            where = "[salesforce]" + "".join(f".{p}" for p in err["loc"])
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(Problem(where, message))
            if err["loc"]:
                bad.add(str(err["loc"][0]))
        # Validate again without the bad keys, so the checks of the auth mode still run and the
        # user sees every problem in one go rather than one per run.
        try:
            settings = SalesforceSettings.model_validate({k: v for k, v in raw.items() if k not in bad})
        except ValidationError:
            settings = None

    if settings is not None:
        secrets_file = settings.secrets_file
        if secrets_file is not None and not secrets_file.is_absolute():
            secrets_file = base_dir / secrets_file
        file_values = _read_secrets_file(secrets_file, problems) if secrets_file else {}
        settings = settings.model_copy(update={
            "secrets_file": secrets_file,
            "secrets": _collect_secrets(environ, file_values, base_dir),
        })
        _check_mode(settings, problems, secrets_file, already_reported=bad)

    if problems:
        raise ConfigError(source, problems,
                          hint="Fix every key listed; secrets go in the environment or the secrets_file.")
    assert settings is not None
    settings._source = source
    return settings


def _read_secrets_file(path: Path, problems: list[Problem]) -> dict[str, str]:
    where = f"[salesforce].secrets_file ({path})"
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        problems.append(Problem(where, f"cannot be read: {exc.strerror}"))
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("Salesforce secrets file %s is readable by other users; chmod 600 it", path)
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        values = _parse_env_lines(text, where, problems)
    out: dict[str, str] = {}
    for key, value in values.items():
        if key not in SECRET_ENV_VARS:
            problems.append(Problem(f"{where}: {key}", f"unknown key; expected one of {', '.join(SECRET_ENV_VARS)}"))
        elif not isinstance(value, str):
            problems.append(Problem(f"{where}: {key}", "must be a string"))
        else:
            out[key] = value
    return out


def _parse_env_lines(text: str, where: str, problems: list[Problem]) -> dict[str, str]:
    """`KEY=VALUE` lines, read as python-dotenv reads a .env file (no `${VAR}` expansion).

    `export KEY=...` and `# comment` lines are allowed; an unquoted value ends at ` #` (an inline
    comment), a single- or double-quoted value keeps everything inside its quotes, `#` included.
    """
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None and not binding.error:
            continue  # a blank or comment line
        if binding.error or binding.value is None:
            # never echo the line: it may be a secret pasted without its name
            problems.append(Problem(f"{where}: line {binding.original.line}", "expected KEY=VALUE"))
            continue
        assert binding.key is not None
        values[binding.key] = binding.value
    return values


def _collect_secrets(environ: Mapping[str, str], file_values: Mapping[str, str],
                     base_dir: Path) -> SalesforceSecrets:
    def pick(name: str) -> str | None:
        value = environ.get(name) or file_values.get(name)
        return value if value else None

    key_path = pick(ENV_PRIVATE_KEY)
    path = None
    if key_path:
        path = Path(key_path).expanduser()
        if not path.is_absolute():
            path = base_dir / path
    return SalesforceSecrets(
        consumer_secret=_secret(pick(ENV_CONSUMER_SECRET)),
        private_key_path=path,
        password=_secret(pick(ENV_PASSWORD)),
        access_token=_secret(pick(ENV_ACCESS_TOKEN)),
    )


def _secret(value: str | None) -> SecretStr | None:
    if value is None:
        return None
    REDACTOR.register(value)
    return SecretStr(value)


def _check_url(value: str | None, where: str, problems: list[Problem]) -> None:
    if value is None:
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        problems.append(Problem(where, "is not a URL; expected e.g. https://mycompany.my.salesforce.com"))
        return
    if parts.scheme.lower() != "https":
        problems.append(Problem(where, f"must be an https:// URL, not {parts.scheme or 'a URL without a scheme'}"
                                       f"{'://' if parts.scheme else ''}: the login sends the consumer secret and "
                                       "every call the access token, so revsync never uses plain http "
                                       "(there is no opt-out)"))
    elif parts.username is not None or parts.password is not None:
        problems.append(Problem(where, "must not contain a user name or password; secrets go in the "
                                       "environment or the secrets_file"))
    elif not parts.hostname:
        problems.append(Problem(where, "must be a URL with a host, e.g. https://mycompany.my.salesforce.com"))
    elif parts.path not in ("", "/") or parts.query:
        problems.append(Problem(where, "must be the bare org URL, without a path"))


def _check_mode(settings: SalesforceSettings, problems: list[Problem], secrets_file: Path | None,
                *, already_reported: set[str]) -> None:
    mode = settings.auth
    secrets = settings.secrets
    env_where = "environment" + (f" or {secrets_file}" if secrets_file else "")

    def need_key(name: str) -> None:
        if name not in already_reported and not getattr(settings, name):
            problems.append(Problem(f"[salesforce].{name}", f"required when auth = \"{mode}\""))

    def need_secret(present: object, env: str) -> None:
        if not present:
            problems.append(Problem(f"{env} ({env_where})", f"required when auth = \"{mode}\""))

    _check_url(settings.login_url, "[salesforce].login_url", problems)
    _check_url(settings.instance_url, "[salesforce].instance_url", problems)
    if mode == "jwt":
        need_key("consumer_key")
        need_key("username")
        need_secret(secrets.private_key_path, ENV_PRIVATE_KEY)
        path = secrets.private_key_path
        if path is not None and not path.is_file():
            problems.append(Problem(f"{ENV_PRIVATE_KEY} ({env_where})",
                                    f"names {path}, which is not a readable file (expected a PEM private key)"))
    elif mode == "client_credentials":
        need_key("consumer_key")
        need_secret(secrets.consumer_secret, ENV_CONSUMER_SECRET)
        # The client credentials flow must be sent to the org's My Domain, not the generic login
        # hosts (Salesforce Help: "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration").
        if urlsplit(settings.login_url).hostname in _GENERIC_LOGIN_HOSTS:
            problems.append(Problem("[salesforce].login_url",
                                    "client_credentials needs your My Domain URL "
                                    "(https://yourdomain.my.salesforce.com), not login/test.salesforce.com"))
    elif mode == "session":
        need_key("instance_url")
        need_secret(secrets.access_token, ENV_ACCESS_TOKEN)
    elif mode == "password":
        need_key("consumer_key")
        need_key("username")
        need_secret(secrets.consumer_secret, ENV_CONSUMER_SECRET)
        need_secret(secrets.password, ENV_PASSWORD)
