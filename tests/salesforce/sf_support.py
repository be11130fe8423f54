"""Shared test data for the Salesforce client tests: samples, constants, a recording sleep."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any


SAMPLES = Path(__file__).parent / "samples"
INSTANCE = "https://orgname.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"
NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
CONSUMER_SECRET = "cs-TOP-SECRET-9f8e7d"
ACCESS_TOKEN = "00Dxx!AQ-SECRET-TOKEN-abc"


def sample(name: str) -> Any:
    """A recorded response body from samples/ (floats as Decimal, like the client)."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"), parse_float=Decimal)


def sample_text(name: str) -> str:
    """A recorded response body, byte for byte."""
    return (SAMPLES / name).read_text(encoding="utf-8")


class Sleeps(list):
    """A sleep that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def token_body(token: str) -> dict[str, str]:
    return {"access_token": token, "instance_url": INSTANCE, "id": f"{INSTANCE}/id/00D/005",
            "token_type": "Bearer", "issued_at": "1714564800000", "signature": "sig"}
