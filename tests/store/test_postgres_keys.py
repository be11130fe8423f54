"""Keys taken beforehand on PostgreSQL (`repository._next_pks`): the next values of the key's own
sequence, ascending, the ones a row inserted without a key would have been given."""
from __future__ import annotations

import sys
from pathlib import Path

from connector.store import repository as repo
from connector.store import schema as t
from connector.store.db import open_store

sys.path.insert(0, str(Path(__file__).parent))
from store_support import postgres_schema  # noqa: E402


def test_keys_taken_from_the_sequence_in_order_and_the_next_row_gets_the_one_after() -> None:
    with postgres_schema() as url:
        engine = open_store(url)
        try:
            with engine.begin() as conn:
                first = repo._next_pks(conn, t.outbox, 1300)
                second = repo._next_pks(conn, t.outbox, 3)
                assert first is not None and second is not None
                assert first == list(range(first[0], first[0] + 1300))
                assert second == [first[-1] + 1, first[-1] + 2, first[-1] + 3]
                given = conn.exec_driver_sql(
                    "INSERT INTO outbox (object, external_id, kind, payload, state, attempts, created_at, updated_at) "
                    "VALUES ('Account', 'A', 'record', '{}', 'NEW', 0, now(), now()) RETURNING id").scalar()
                assert given == second[-1] + 1
                assert repo._next_pks(conn, t.order_lines, 0) is None
        finally:
            engine.dispose()
