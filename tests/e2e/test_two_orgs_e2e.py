"""Two orgs on one store: one configuration file with `[orgs.NAME]` tables, `revsync --org NAME ...`
run as a user would, each org its own sandbox over HTTPS. Each org ends exactly as if it had been
synced alone, and nothing of one reaches the other's store, reports or Salesforce org."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from e2e_support import Site, postgres_store, salesforce_state, worked_seed

pytestmark = pytest.mark.slow


def west_seed() -> dict:
    """A different book of business: no upsell, three plans instead of one."""
    seed = worked_seed()
    seed["Order"] = [o for o in seed["Order"] if o["@ref"] != "o3"]
    seed["OrderItem"] = [i for i in seed["OrderItem"] if i["@ref"] != "op003"]
    for item in seed["OrderItem"]:
        if item["@ref"] == "op002":
            item["Quantity"] = 3
    return seed


def org_table(name: str, site: Site) -> str:
    return (f'[orgs.{name}.salesforce]\nauth = "client_credentials"\nlogin_url = "{site.server.url}"\n'
            f'consumer_key = "revsync-test-client"\n')


def run(site: Site, config: Path, *args: str):
    """`revsync --config FILE ARGS` in the site's environment (its CA, its secret)."""
    return site.revsync("--config", str(config), *args, timeout=120)


def subscriptions(site: Site, config: Path, org: str) -> list[dict]:
    result = run(site, config, "--org", org, "report", "subscriptions", "--kind", "all", "-f", "json")
    assert result.code == 0, result
    return json.loads(result.stdout)


@pytest.mark.postgres
def test_two_orgs_on_one_postgresql_store_stay_apart(tmp_path):
    east_name, west_name = f"east_{uuid.uuid4().hex[:6]}", f"west_{uuid.uuid4().hex[:6]}"
    with postgres_store() as url:
        east, west = Site(tmp_path / "east", worked_seed()), Site(tmp_path / "west", west_seed())
        alone_east, alone_west = Site(tmp_path / "alone-east", worked_seed()), Site(tmp_path / "alone-west", west_seed())
        try:
            config = tmp_path / "orgs.toml"
            config.write_text(f'[store]\nurl = "{url}"\n\n[fiscal]\nsource = "salesforce"\n\n'
                              + org_table(east_name, east) + org_table(west_name, west))
            # with two orgs configured, a command must say which
            unnamed = run(east, config, "status")
            assert unnamed.code == 2 and "--org" in unnamed.stderr and east_name in unnamed.stderr, unnamed
            # west's store part does not exist before its first sync, whatever east did
            assert run(east, config, "--org", east_name, "sync", "--once").code == 0
            empty = run(west, config, "--org", west_name, "report", "accounts")
            assert empty.code == 2 and "no store yet" in empty.stderr, empty
            assert run(west, config, "--org", west_name, "sync", "--once").code == 0

            # each org as if synced alone (its own SQLite store)
            for alone in (alone_east, alone_west):
                assert alone.revsync("sync", "--once").code == 0
            assert salesforce_state(east.org, east.refs) == salesforce_state(alone_east.org, alone_east.refs)
            assert salesforce_state(west.org, west.refs) == salesforce_state(alone_west.org, alone_west.refs)
            # and the two differ, so the comparison can tell them apart
            assert salesforce_state(east.org, east.refs) != salesforce_state(west.org, west.refs)

            # the reports of each org show its own book only
            east_subs, west_subs = subscriptions(east, config, east_name), subscriptions(west, config, west_name)
            assert sorted(int(s["quantity"]) for s in east_subs) == [1, 16]
            assert sorted(int(s["quantity"]) for s in west_subs) == [3, 10]
            # a second pass of either writes nothing: the other's outbox, cursors and lease are not its own
            before = len(east.org.request_log), len(west.org.request_log)
            assert run(west, config, "--org", west_name, "sync", "--once").code == 0
            assert len(east.org.request_log) == before[0]
        finally:
            for s in (east, west, alone_east, alone_west):
                s.stop()
            from store_support import drop_org_schemas  # on the path once postgres_store() ran

            drop_org_schemas(url, (east_name, west_name))
