"""Structured logs: one JSON object per line, UTC timestamps; and the one secret redactor.

Secrets are never passed to loggers on purpose, but an endpoint or a proxy may echo a request back
(a token endpoint answering an error with the form it received), and that text ends up in error
messages, log lines and stored errors. Every secret the connector holds (consumer secret, password,
access tokens, JWT assertions, private key lines) is registered with `REDACTOR`, which replaces it in
any encoding it may take on the way: raw, percent-encoded (`quote`, `quote_plus`, upper- or
lower-case hex, doubly encoded), JSON- or repr-escaped (once or more), or base64. It is applied to
every Salesforce error message (connector.salesforce.errors), to every log record (a record factory,
whatever the handler) and to every JSON log line (JsonFormatter).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

MASK = "********"


def _hex(byte: int) -> str:
    # percent-encoding may use either case for the hex digits (RFC 3986 section 2.1)
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{byte:02X}")


def _char_pattern(char: str) -> str:
    """Every way one character of a secret may be written: itself, %XX (doubly encoded: %25XX), `+` for
    a space (form encoding), or escaped with backslashes (JSON, repr, JSON inside JSON)."""
    alternatives = [re.escape(char)]
    alternatives += ["".join(f"%(?:25)*{_hex(b)}" for b in char.encode("utf-8"))]
    if char == " ":
        alternatives.append(r"\+")
    if char in "\"'/":
        alternatives.append(r"\\+" + re.escape(char))
    elif char == "\\":
        alternatives.append(r"\\+")
    escapes = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}
    if char in escapes:
        alternatives.append(r"\\+" + escapes[char])
    if char in escapes or ord(char) < 0x20 or ord(char) > 0x7E:
        code = ord(char)
        if code <= 0xFFFF:
            alternatives.append(r"\\+u" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d
                                                   for d in f"{code:04X}"))
            if code <= 0xFF:
                alternatives.append(r"\\+x" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d
                                                       for d in f"{code:02X}"))
    # encoded forms first: a literal "%" must not win over "%25", nor a bare quote over an escaped one
    return "(?:" + "|".join(alternatives[1:] + alternatives[:1]) + ")"


def secret_pattern(secret: str) -> str:
    """A regular expression matching `secret` in every encoding the redactor knows, even mixed."""
    spelled = "".join(_char_pattern(c) for c in secret)
    raw = secret.encode("utf-8")
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    encoded |= {e.rstrip("=") for e in encoded}
    return "|".join([spelled] + [re.escape(e) for e in sorted(encoded, key=len, reverse=True)])


class Redactor:
    """The secrets of this process, and the function that masks them in any text."""

    #: shorter values are not masked: they would blank out ordinary words
    MIN_LENGTH = 4
    #: tokens and assertions issued while running (a few a day: one per login); the oldest, long
    #: expired, are forgotten past this many, which keeps the pattern small to compile and to run
    MAX_ISSUED = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lasting: dict[str, str] = {}
        self._issued: OrderedDict[str, str] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: str | None, *, issued: bool = False) -> None:
        """Mask `secret` from now on; `issued` marks a short-lived one (token, assertion)."""
        if not secret or len(secret) < self.MIN_LENGTH:
            return
        with self._lock:
            if secret in self._lasting or secret in self._issued:
                if issued:
                    self._issued.move_to_end(secret)
                return
            if issued:
                self._issued[secret] = secret_pattern(secret)
                while len(self._issued) > self.MAX_ISSUED:
                    self._issued.popitem(last=False)
            else:
                self._lasting[secret] = secret_pattern(secret)
            patterns = sorted({**self._lasting, **self._issued}.items(), key=lambda kv: -len(kv[0]))
            # longest first, so a secret that contains another is masked whole
            self._pattern = re.compile("|".join(f"(?:{p})" for _, p in patterns))
        install()

    @property
    def active(self) -> bool:
        """True once a secret is registered."""
        return self._pattern is not None

    def redact(self, text: str) -> str:
        """`text` with every registered secret, in any encoding, replaced by ********."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact_value(self, value: Any) -> Any:
        """`redact` applied through strings, lists, tuples and dicts (keys too)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact_value(v) for v in value)
        return value

    def forget_all(self) -> None:
        """Forget every secret (tests only)."""
        with self._lock:
            self._lasting.clear()
            self._issued.clear()
            self._pattern = None


#: the one redactor of the process
REDACTOR = Redactor()
_installed = False
_plain_formatter = logging.Formatter()


def install() -> None:
    """Redact every log record at creation, whatever handler writes it (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if REDACTOR.active:
            _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
        return
    clean = REDACTOR.redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # formatted now, so the traceback and its chained causes are masked for every handler
        record.exc_text = REDACTOR.redact(_plain_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = REDACTOR.redact(record.stack_info)


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its extra fields (`log.info("...", extra={"object": "Order"})`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        line = json.dumps(REDACTOR.redact_value(entry), default=lambda v: REDACTOR.redact(str(v)))
        # a last pass over the line itself: values turned to text by json.dumps are masked too
        return REDACTOR.redact(line)


def setup(*, json_lines: bool, verbose: bool) -> None:
    """Send logs to stderr, as JSON lines for the daemon or plain text for interactive commands."""
    install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose or json_lines else logging.WARNING)
    # Alembic's INFO lines ("Context impl SQLiteImpl.", "Running upgrade ...") are noise to a user;
    # the store logs one line of its own when it migrates (connector.store.db)
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
