"""Paths the mapping tests share: the repository and its shipped mappings."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "mappings"
