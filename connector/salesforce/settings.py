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
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv.parser import parse_stream
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, TypeAdapter, ValidationError,
                      field_validator)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


class SalesforceSecrets(BaseSettings):
    """Secret values for the chosen auth mode; held as SecretStr so they never print.

    Each field is read, by its environment variable name, from the sources load_settings builds:
    the environment first (it wins), then the secrets_file. A bare `SalesforceSecrets()` reads
    nothing (no source but its arguments).
    """

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore",
                                      hide_input_in_errors=True)

    consumer_secret: SecretStr | None = Field(default=None, validation_alias=ENV_CONSUMER_SECRET)
    private_key_path: Path | None = Field(default=None, validation_alias=ENV_PRIVATE_KEY)
    password: SecretStr | None = Field(default=None, validation_alias=ENV_PASSWORD)
    access_token: SecretStr | None = Field(default=None, validation_alias=ENV_ACCESS_TOKEN)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # load_settings passes its own sources (_build_sources)

    @field_validator("consumer_secret", "password", "access_token", mode="after")
    @classmethod
    def _redact(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            REDACTOR.register(value.get_secret_value())
        return value


class JwtSecrets(SalesforceSecrets):
    private_key_path: Path = Field(validation_alias=ENV_PRIVATE_KEY)

    @field_validator("private_key_path", mode="after")
    @classmethod
    def _readable(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"names {value}, which is not a readable file (expected a PEM private key)")
        return value


class ClientCredentialsSecrets(SalesforceSecrets):
    consumer_secret: SecretStr = Field(validation_alias=ENV_CONSUMER_SECRET)


class SessionSecrets(SalesforceSecrets):
    access_token: SecretStr = Field(validation_alias=ENV_ACCESS_TOKEN)


class PasswordSecrets(SalesforceSecrets):
    consumer_secret: SecretStr = Field(validation_alias=ENV_CONSUMER_SECRET)
    password: SecretStr = Field(validation_alias=ENV_PASSWORD)


SECRETS_BY_MODE: dict[str, type[SalesforceSecrets]] = {
    "jwt": JwtSecrets, "client_credentials": ClientCredentialsSecrets,
    "session": SessionSecrets, "password": PasswordSecrets,
}


class _SecretsSource(PydanticBaseSettingsSource):
    """The REVSYNC_SF_* values of a mapping (the environment, or the secrets_file's contents).

    Empty values count as unset. Secret values are handed on as SecretStr, so pydantic-settings'
    own debug log (PYDANTIC_SETTINGS_DEBUG) never shows them.
    """

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str], base_dir: Path) -> None:
        super().__init__(settings_cls)
        self._values = values
        self._base_dir = base_dir

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = str(field.validation_alias)
        value = self._values.get(name)
        if not value:
            return None, name, False
        if name == ENV_PRIVATE_KEY:
            path = Path(value).expanduser()
            return (path if path.is_absolute() else self._base_dir / path), name, False
        return SecretStr(value), name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, name, _ = self.get_field_value(field, field_name)
            if value is not None:
                out[name] = value
        return out


class _EnvironmentSource(_SecretsSource):
    """The environment's REVSYNC_SF_* variables (they win over the secrets_file)."""


class _SecretsFileSource(_SecretsSource):
    """The secrets_file's REVSYNC_SF_* values."""


class SalesforceSettings(BaseModel):
    """Validated `[salesforce]` settings plus the secrets found for them.

    load_settings returns one of the subclasses below, chosen by `auth` (a discriminated union);
    each makes the keys its auth mode needs required.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

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
    #: the Pub/Sub API's host:port, for Change Data Capture ([sync] source including "cdc")
    pubsub_url: str = Field(default="api.pubsub.salesforce.com:7443", pattern=r"^[A-Za-z0-9.\-]+:\d{1,5}$")
    secrets_file: Path | None = None
    secrets: SalesforceSecrets = Field(default_factory=SalesforceSecrets, exclude=True)
    #: the configuration file these settings came from, for messages that name it
    _source: str = PrivateAttr(default="the configuration file")

    @field_validator("login_url", "instance_url", mode="after")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        problem = None if value is None else _url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def source(self) -> str:
        """The configuration file the settings were read from (named in error messages)."""
        return self._source

    @property
    def token_url(self) -> str:
        """The OAuth 2.0 token endpoint for this org."""
        return self.login_url.rstrip("/") + "/services/oauth2/token"


class JwtSettings(SalesforceSettings):
    """`auth = "jwt"`: the JWT bearer flow (consumer key, username, REVSYNC_SF_PRIVATE_KEY)."""

    auth: Literal["jwt"]
    consumer_key: str
    username: str


class ClientCredentialsSettings(SalesforceSettings):
    """`auth = "client_credentials"`: consumer key and REVSYNC_SF_CONSUMER_SECRET, at the My Domain."""

    auth: Literal["client_credentials"]
    consumer_key: str
    login_url: str = Field(default=DEFAULT_LOGIN_URL, validate_default=True)

    @field_validator("login_url", mode="after")
    @classmethod
    def _my_domain(cls, value: str) -> str:
        # The client credentials flow must be sent to the org's My Domain, not the generic login
        # hosts (Salesforce Help: "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration").
        if urlsplit(value).hostname in _GENERIC_LOGIN_HOSTS:
            raise ValueError("client_credentials needs your My Domain URL "
                             "(https://yourdomain.my.salesforce.com), not login/test.salesforce.com")
        return value


class SessionSettings(SalesforceSettings):
    """`auth = "session"`: an access token (REVSYNC_SF_ACCESS_TOKEN) for `instance_url`."""

    auth: Literal["session"]
    instance_url: str


class PasswordSettings(SalesforceSettings):
    """`auth = "password"` (legacy): consumer key and secret, username and REVSYNC_SF_PASSWORD."""

    auth: Literal["password"]
    consumer_key: str
    username: str


_BY_MODE = TypeAdapter(Annotated[JwtSettings | ClientCredentialsSettings | SessionSettings | PasswordSettings,
                                 Field(discriminator="auth")])
_MODES = ("jwt", "client_credentials", "session", "password")


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

    mode = raw.get("auth")
    settings: SalesforceSettings | None = None
    bad: set[str] = set()
    try:
        settings = _BY_MODE.validate_python(raw)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            loc = err["loc"][1:] if err["type"] not in _TAG_ERRORS else ("auth",)
            where = "[salesforce]" + "".join(f".{p}" for p in loc)
            problems.append(Problem(where, _message(err, mode)))
            if loc:
                bad.add(str(loc[0]))
        if "auth" in bad:
            # No auth mode to check against: still report every other key's problem in this run.
            rest = {k: v for k, v in raw.items() if k != "auth"}
            try:
                SalesforceSettings.model_validate({**rest, "auth": "session"})
            except ValidationError as exc:
                for err in exc.errors(include_input=False, include_url=False):
                    problems.append(Problem("[salesforce]" + "".join(f".{p}" for p in err["loc"]),
                                            _message(err, None)))

    secrets_file: Path | None = None
    if isinstance(raw.get("secrets_file"), str) and "secrets_file" not in bad:
        secrets_file = Path(raw["secrets_file"])
        if not secrets_file.is_absolute():
            secrets_file = base_dir / secrets_file
    secrets: SalesforceSecrets | None = None
    if mode in _MODES:
        file_values = _read_secrets_file(secrets_file, problems) if secrets_file else {}
        secrets = _find_secrets(mode, environ, file_values, base_dir, problems, secrets_file)

    if problems:
        raise ConfigError(source, problems,
                          hint="Fix every key listed; secrets go in the environment or the secrets_file.")
    assert settings is not None and secrets is not None
    settings = settings.model_copy(update={"secrets_file": secrets_file, "secrets": secrets})
    settings._source = source
    return settings


_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


def _message(err: Any, mode: object) -> str:
    if err["type"] in _TAG_ERRORS:
        return f"must be one of {', '.join(_MODES)} (the auth mode is never guessed)"
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing" and mode in _MODES:
        return f"required when auth = \"{mode}\""
    return str(err["msg"]).removeprefix("Value error, ")


def _find_secrets(mode: str, environ: Mapping[str, str], file_values: Mapping[str, str],
                  base_dir: Path, problems: list[Problem], secrets_file: Path | None) -> SalesforceSecrets | None:
    """The mode's secrets, the environment winning over the secrets_file (pydantic-settings sources)."""
    model = SECRETS_BY_MODE[mode]
    sources = (_EnvironmentSource(model, environ, base_dir), _SecretsFileSource(model, file_values, base_dir))
    try:
        # (mypy sees only the fields in the __init__ pydantic synthesises, not BaseSettings' own arguments)
        return model(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        env_where = "environment" + (f" or {secrets_file}" if secrets_file else "")
        for err in exc.errors(include_input=False, include_url=False):
            problems.append(Problem(f"{err['loc'][0]} ({env_where})", _message(err, mode)))
        return None


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


def _url_problem(value: str) -> str | None:
    """What is wrong with an org URL (login_url, instance_url), or None."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "is not a URL; expected e.g. https://mycompany.my.salesforce.com"
    if parts.scheme.lower() != "https":
        return (f"must be an https:// URL, not {parts.scheme or 'a URL without a scheme'}"
                f"{'://' if parts.scheme else ''}: the login sends the consumer secret and "
                "every call the access token, so revsync never uses plain http (there is no opt-out)")
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password; secrets go in the environment or the secrets_file"
    if not parts.hostname:
        return "must be a URL with a host, e.g. https://mycompany.my.salesforce.com"
    if parts.path not in ("", "/") or parts.query:
        return "must be the bare org URL, without a path"
    return None
