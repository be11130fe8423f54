"""`[orgs.NAME]` tables and `--org`: one configuration file for several orgs sharing one store."""
from __future__ import annotations

import pytest

from connector.config import load_config
from connector.errors import ConfigError
from connector.store.db import org_store_url

TWO = """
[store]
url = "sqlite:///{dir}/revsync.db"
[sync]
interval_seconds = 30
lookback_seconds = 120
[salesforce]
auth = "client_credentials"
consumer_key = "shared-app"
[orgs.east.salesforce]
login_url = "https://east.my.salesforce.com"
[orgs.west.salesforce]
login_url = "https://west.my.salesforce.com"
consumer_key = "west-app"
[orgs.west.sync]
interval_seconds = 90
"""


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text.replace("{dir}", str(tmp_path)))
    return str(path)


def problems(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value) + " " + " ".join(p.message for p in exc.value.problems) + " " + (exc.value.hint or "")


def test_an_org_lays_its_tables_over_the_shared_ones_key_by_key(tmp_path):
    path = write(tmp_path, TWO)
    east, west = load_config(path, org="east"), load_config(path, org="west")
    assert east.org == "east" and west.org == "west"
    assert east.salesforce == {"auth": "client_credentials", "consumer_key": "shared-app",
                               "login_url": "https://east.my.salesforce.com"}
    assert west.salesforce["consumer_key"] == "west-app"
    assert (east.sync.interval_seconds, west.sync.interval_seconds) == (30, 90)
    assert west.sync.lookback_seconds == 120  # not overridden: the shared value
    assert east.store_url() == f"sqlite:///{tmp_path}/revsync.east.db"
    assert west.store_url() == f"sqlite:///{tmp_path}/revsync.west.db"


def test_several_orgs_need_a_name_and_the_name_must_be_one_of_them(tmp_path):
    path = write(tmp_path, TWO)
    with pytest.raises(ConfigError) as unnamed:
        load_config(path)
    assert "2 orgs (east, west)" in problems(unnamed) and "--org" in problems(unnamed)
    with pytest.raises(ConfigError) as unknown:
        load_config(path, org="north")
    assert "no [orgs.north] table; the orgs are east, west" in problems(unknown)


def test_a_single_org_is_chosen_without_a_name(tmp_path):
    path = write(tmp_path, '[orgs.solo.sync]\ninterval_seconds = 5\n')
    config = load_config(path)
    assert config.org == "solo" and config.sync.interval_seconds == 5


def test_an_org_name_on_a_one_org_file_is_refused(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, "[sync]\ninterval_seconds = 5\n"), org="east")
    assert "names no orgs" in problems(exc)


def test_bad_org_tables_are_all_named(tmp_path):
    path = write(tmp_path, '[orgs.East]\n[orgs.west.store]\nurl = "sqlite:///x.db"\n[orgs.west.sycn]\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path, org="west")
    text = problems(exc)
    assert "orgs.East" in text and "lower-case" in text
    assert "orgs.west.store" in text and "shared by every org" in text
    assert "orgs.west.sycn" in text and "unknown section" in text


def test_a_postgresql_org_gets_its_own_schema_and_keeps_the_other_options():
    url = "postgresql+psycopg://revsync@db/revsync?options=-cstatement_timeout%3D5000+-csearch_path%3Dold"
    got = org_store_url(url, "east")
    assert got.startswith("postgresql+psycopg://revsync@db/revsync?options=")
    assert "statement_timeout%3D5000" in got and "search_path%3Drevsync_east" in got and "old" not in got
