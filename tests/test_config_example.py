"""config.example.toml documents every configuration key, and is itself a valid configuration."""
import re
import tomllib
from pathlib import Path

import pytest

from connector.config import (Config, EngineConfig, FiscalConfig, JobsConfig, ReportsConfig, StoreConfig,
                              SyncConfig, WorkersConfig)
from connector.salesforce.settings import SalesforceSettings
from connector.server import ServerSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
TABLES = {"store": StoreConfig, "fiscal": FiscalConfig, "engine": EngineConfig, "jobs": JobsConfig,
          "reports": ReportsConfig, "sync": SyncConfig, "workers": WorkersConfig, "server": ServerSettings, "salesforce": SalesforceSettings}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_key_is_documented(table):
    text = EXAMPLE.read_text()
    missing = [key for key in TABLES[table].model_fields if key != "secrets"
               and not re.search(rf"^#?\s*{key}\s*=", text, re.M)]
    assert missing == [], f"[{table}] keys missing from config.example.toml: {missing}"


def test_the_example_is_a_valid_configuration():
    Config.model_validate(tomllib.loads(EXAMPLE.read_text()))
