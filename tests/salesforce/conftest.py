"""Fixtures for the Salesforce client tests: a frozen clock, a sleep that only records, settings."""
from __future__ import annotations

import pytest
import requests
import responses
from sf_support import ACCESS_TOKEN, CONSUMER_SECRET, INSTANCE, NOW, Sleeps

from connector.clock import FrozenClock
from connector.salesforce.client import SalesforceClient
from connector.salesforce.retry import RetryPolicy
from connector.salesforce.settings import SalesforceSettings, load_settings


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(max_attempts=4, initial_wait=1.0, max_wait=8.0, jitter=0.5, sleep=sleeps)


@pytest.fixture
def session_settings() -> SalesforceSettings:
    return load_settings({"auth": "session", "instance_url": INSTANCE}, source="test.toml",
                         environ={"REVSYNC_SF_ACCESS_TOKEN": ACCESS_TOKEN})


@pytest.fixture
def cc_settings() -> SalesforceSettings:
    """client_credentials: a mode that can renew its token."""
    return load_settings({"auth": "client_credentials", "login_url": "https://acme.my.salesforce.com",
                          "consumer_key": "3MVG9-key"}, source="test.toml",
                         environ={"REVSYNC_SF_CONSUMER_SECRET": CONSUMER_SECRET})


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client(session_settings, clock, retry, rsps) -> SalesforceClient:
    return SalesforceClient(session_settings, session=requests.Session(), clock=clock, retry=retry)
