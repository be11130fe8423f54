"""Shared constants and helpers for the sandbox org tests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLES = Path("/work/shared/salesforce-samples")
BASE = "https://sandbox.revsync.test"
API = BASE + "/services/data/v60.0"


def sample(name: str):
    """A recorded Salesforce response body from the shared samples folder."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"recorded sample {path} is not available on this machine")
    return json.loads(path.read_text("utf-8"))
