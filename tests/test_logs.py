"""The one redactor: every encoding of a secret, in error text, every log record and JSON log lines."""
from __future__ import annotations

import base64
import io
import json
import logging
import re
from urllib.parse import quote, quote_plus, urlencode

import pytest

from connector.logs import MASK, REDACTOR, JsonFormatter, Redactor

SECRET = 'Zq@9 x+/%"\\\'é-logs'

FORMS = {
    "raw": SECRET,
    "quote": quote(SECRET),
    "quote-safe-none": quote(SECRET, safe=""),
    "quote-lower-hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")),
    "quote-plus": quote_plus(SECRET),
    "form-body": urlencode({"client_secret": SECRET}).split("=", 1)[1],
    "double-percent": quote(quote(SECRET, safe=""), safe=""),
    "json": json.dumps(SECRET)[1:-1],
    "json-unicode": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "json-in-json": json.dumps(json.dumps(SECRET))[1:-1],
    "repr": repr(SECRET)[1:-1],
    "base64": base64.b64encode(SECRET.encode()).decode(),
    "base64-url-unpadded": base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
}


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.register(SECRET)
    return r


@pytest.mark.parametrize("form", list(FORMS.values()), ids=list(FORMS))
def test_every_encoding_is_masked(redactor, form):
    out = redactor.redact(f"echo: [{form}] end")
    assert out.startswith("echo: [") and out.endswith("] end") and MASK in out
    assert "Zq" not in out and "logs" not in out, out


def test_text_without_a_secret_is_left_alone(redactor):
    text = "Zq@9 x is a prefix only; %40 and + alone are fine"
    assert redactor.redact(text) == text


def test_short_values_are_not_masked_and_issued_ones_are_bounded():
    r = Redactor()
    r.register("abc")
    assert not r.active and r.redact("abc") == "abc"
    for n in range(Redactor.MAX_ISSUED + 5):
        r.register(f"token-{n:04d}-xyz", issued=True)
    assert r.redact("token-0000-xyz") == "token-0000-xyz"  # the oldest is forgotten
    assert r.redact(f"token-{Redactor.MAX_ISSUED + 4:04d}-xyz") == MASK


def test_a_longer_secret_containing_another_is_masked_whole():
    r = Redactor()
    r.register("inner-secret")
    r.register("outer-inner-secret-tail")
    assert r.redact("x outer-inner-secret-tail y") == f"x {MASK} y"


def test_log_records_are_masked_whatever_the_handler(caplog):
    secret = "rec0rd-S3CRET/+x"
    REDACTOR.register(secret)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.logs.plain")
    log.addHandler(handler)
    try:
        log.warning("token endpoint said %s", f"bad body client_secret={quote_plus(secret)}")
        try:
            try:
                raise ValueError(f"inner {json.dumps(secret)}")
            except ValueError as inner:
                raise RuntimeError("outer") from inner
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue() + caplog.text
    assert "client_secret=" + MASK in text and "inner " in text  # the chain is there, masked
    assert "rec0rd" not in text


def test_json_lines_mask_message_extras_and_the_exception_chain():
    secret = 'js0n-S3CRET "q" %'
    REDACTOR.register(secret)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", (secret,), None)
    record.body = {"echo": quote(secret), "nested": [secret]}
    try:
        raise KeyError(secret)
    except KeyError as exc:
        record.exc_info = (KeyError, exc, exc.__traceback__)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == f"got {MASK}" and entry["body"] == {"echo": MASK, "nested": [MASK]}
    assert "KeyError" in entry["error"]
    assert "js0n" not in line
