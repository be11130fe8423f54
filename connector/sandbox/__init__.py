"""The sandbox org: a local Salesforce for the demo and the tests.

Modules: ``org`` (state, DML, queries, sessions, limits), ``soql`` (the strict SOQL subset),
``schema`` (describe, from ``standard_objects.json`` and the DX metadata in ``salesforce/``),
``ids`` (18-character Ids), ``bulk`` (Bulk API 2.0 jobs), ``auth`` (OAuth token endpoint),
``faults`` (fault rules), ``soap`` (the SOAP endpoint: ``deleteByExample`` of big-object rows),
``app`` (the WSGI app), ``transport`` (in-process ``requests`` adapter),
``server`` (HTTPS on loopback with cheroot + trustme), ``seed`` (loading a JSON seed file),
``events`` (the Change Data Capture event log, ``org.events``, and its stream faults),
``pubsub`` (the Pub/Sub API over gRPC + TLS).

Besides REST, Bulk API 2.0 and SOAP over HTTPS, ``server.serve(org, pubsub_port=0)`` (``revsync
sandbox serve --pubsub-port N``) serves Salesforce's Pub/Sub API at ``SandboxServer.pubsub_target``
(``localhost:PORT``, TLS from the same test CA): every committed create, update and delete of an
object in ``OrgConfig.cdc_entities`` is a change event on ``/data/<Object>ChangeEvent`` and
``/data/ChangeEvents``, Avro-encoded, replayable for ``OrgConfig.event_retention`` (72 hours).

Typical in-process use::

    from connector.sandbox.org import Org
    from connector.sandbox.seed import load_seed
    from connector.sandbox.transport import sandbox_session

    org = Org()
    refs = load_seed(org, "seed.json")
    session = sandbox_session(org, token=org.issue_token())
    session.get("https://sandbox.revsync.test/services/data/v60.0/query", params={"q": "SELECT Id FROM Account"})
"""
