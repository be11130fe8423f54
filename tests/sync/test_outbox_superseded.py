"""A writer that resumes after another one wrote newer values (a daemon paused past its lease, then
woken) never makes an entry it had read due again, so nothing older is written over newer."""
from __future__ import annotations

import json

from sqlalchemy import select

from connector.store import schema as t
from connector.writers.outbox import OutboxWriter, enqueue
from sync_support import close, connect


class _Paused:
    """The client of a writer that is paused at its first call while `meanwhile` runs."""

    def __init__(self, client, meanwhile):
        self._client, self._meanwhile, self._paused = client, meanwhile, False

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upsert_collection(self, *args, **kwargs):
        if not self._paused:
            self._paused = True
            self._meanwhile()
        return self._client.upsert_collection(*args, **kwargs)


def _entries(c, sobject: str) -> list:
    with c.app.store.connect() as conn:
        return conn.execute(select(t.outbox).where(t.outbox.c.object == sobject).order_by(t.outbox.c.id)).all()


def test_a_resumed_writer_does_not_send_a_payload_another_writer_superseded(tmp_path, monkeypatch):
    c = connect(tmp_path, monkeypatch)
    try:
        c.service.cycle()
        c.runtime.writer.flush()  # the worked example in Salesforce: every entry SUCCESS
        account = _entries(c, "Account")[-1]
        subscription = _entries(c, "Subscription__c")[-1]
        older = json.loads(account.payload) | {"tcv": "100.00"}
        newer = json.loads(account.payload) | {"tcv": "200.00"}
        with c.app.store.begin() as conn:  # a subscription first, so the paused writer stops before the account
            enqueue(conn, [("Subscription__c", subscription.external_id, "record", None,
                            json.loads(subscription.payload)),
                           ("Account", account.external_id, "record", None, older)], c.clock.now())

        def the_other_writer_goes_on():
            c.runtime.writer.flush()  # writes the older value...
            with c.app.store.begin() as conn:  # ...then the account changes again, and that is written too
                enqueue(conn, [("Account", account.external_id, "record", None, newer)], c.clock.now())
            c.runtime.writer.flush()

        paused = OutboxWriter(c.app.store, _Paused(c.runtime.client, the_other_writer_goes_on),
                              c.runtime.service.mappings, c.clock)
        paused.flush()
        c.runtime.writer.flush()

        in_salesforce = {r["Id"]: r for r in c.org.records("Account")}[account.sf_id]
        assert str(in_salesforce["TCV__c"]) in ("200", "200.0", "200.00")
        states = [e.state for e in _entries(c, "Account")]
        assert states and set(states) == {"SUCCESS"}
    finally:
        close(c)
