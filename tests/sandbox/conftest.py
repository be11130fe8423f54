"""Fixtures for the sandbox org tests: a frozen-clock org, an authenticated in-process session."""
from __future__ import annotations

import datetime as dt

import pytest

from connector.clock import FrozenClock
from connector.sandbox.org import Org, OrgConfig
from connector.sandbox.transport import sandbox_session


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc))


@pytest.fixture
def org(clock) -> Org:
    return Org(OrgConfig(), clock=clock)


@pytest.fixture
def sf(org):
    """A requests session already authenticated against the in-process org."""
    return sandbox_session(org, token=org.issue_token())


@pytest.fixture
def catalog(org):
    """A price book with one monthly subscription product, and an account."""
    pb = org.create("Pricebook2", {"Name": "Standard", "IsActive": True})
    prod = org.create("Product2", {"Name": "Seat", "IsActive": True, "ProvisioningType__c": "Subscription",
                                   "PricePeriod__c": "Month"})
    pbe = org.create("PricebookEntry", {"Pricebook2Id": pb, "Product2Id": prod, "UnitPrice": 100, "IsActive": True})
    acct = org.create("Account", {"Name": "Acme"})
    return {"pb": pb, "product": prod, "pbe": pbe, "account": acct}
