"""A sandbox org whose consumer secret has every awkward character, and the checks that no encoding
of a secret shows anywhere: output, logs, store rows, /metrics, the process title."""
from __future__ import annotations

import base64
import json
import socket
import sys
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote, quote_plus, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import CLIENT_ID, Site  # noqa: E402

#: '@', ' ', '+', '/', '%', '"', a backslash, a quote and a non-ASCII letter: each one encoded
#: differently by a form, a URL, JSON and repr
SECRET = "p@ss w0rd+/%\"q\\z'Ü-7c1e"
#: a piece of the secret that survives every text encoding: seeing it means part of it leaked
FRAGMENT = "w0rd"

#: the commands that log in to the org
LOGIN_COMMANDS = {
    "sync": ("sync", "--once"),
    "backfill": ("backfill", "--since", "2023-01-01"),
    "validate": ("mappings", "validate", "--online"),
}


def encodings(secret: str) -> list[str]:
    """Every encoding of `secret` that must never be shown."""
    forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), quote_plus(secret, safe="/"),
             urlencode({"s": secret})[2:], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             json.dumps(json.dumps(secret))[1:-1], repr(secret)[1:-1], ascii(secret)[1:-1],
             base64.b64encode(secret.encode()).decode(), base64.urlsafe_b64encode(secret.encode()).decode()}
    forms |= {f.lower() for f in forms if "%" in f}
    return sorted(forms)


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The encodings of `secrets` found in `text` (empty when none is)."""
    found = [f for s in secrets for f in encodings(s) if f in text]
    if FRAGMENT in text:
        found.append(FRAGMENT)
    return found


class SecretSite(Site):
    """The e2e Site, with `SECRET` as the org's consumer secret and every issued access token recorded.

    `secret` is what the connector is given (REVSYNC_SF_CONSUMER_SECRET): change it for a wrong one.
    """

    def __init__(self, root: Path, seed: dict[str, Any], **kw):
        super().__init__(root, seed, **kw)
        self.secret = SECRET
        self.org.config.clients = {CLIENT_ID: SECRET}
        self.tokens: list[str] = []
        issue = self.org.issue_token

        def recording(client_id: str | None = None) -> str:
            token = issue(client_id)
            self.tokens.append(token)
            return token

        self.org.issue_token = recording  # type: ignore[method-assign]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["REVSYNC_SF_CONSUMER_SECRET"] = self.secret
        return env

    def secrets(self) -> list[str]:
        """The secret configured and every access token the org issued so far."""
        return [SECRET, self.secret, *self.tokens]

    def token_requests(self) -> int:
        return sum(1 for e in self.org.request_log if e.path.rstrip("/") == "/services/oauth2/token")

    def api_requests(self) -> int:
        return sum(1 for e in self.org.request_log if e.path.startswith("/services/data"))

    def store_dump(self) -> str:
        """Every row of every table of the store, as text."""
        if not self.db.exists():
            return ""
        from sqlalchemy import create_engine, inspect, text

        engine = create_engine(f"sqlite:///{self.db}")
        try:
            lines = []
            with engine.connect() as conn:
                for table in inspect(conn).get_table_names():
                    for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                        lines.append(f"{table}: " + " | ".join(map(str, row)))
            return "\n".join(lines)
        finally:
            engine.dispose()


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_login_url(site: Site, url: str) -> None:
    """Point the site's config.toml at another login_url."""
    config = site.root / "config.toml"
    config.write_text(config.read_text().replace(f'login_url = "{site.server.url}"', f'login_url = "{url}"'))
