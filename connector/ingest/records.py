"""The record mirror, the quarantine and the daemon's cursors: what taking Salesforce changes in keeps in the store
(SPEC section 2), and the names of the Salesforce users who own orders."""
from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import Connection, and_, delete, insert, select, update

from connector.store import schema as t

# the logger of connector.ingest, as when these lived in one module (log output names it)
log = logging.getLogger("connector.ingest")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the record mirror")


def _mirror_stamps(conn: Connection, sobject: str, ids: Sequence[str]) -> dict[str, dt.datetime]:
    out: dict[str, dt.datetime] = {}
    for i in range(0, len(ids), 500):
        for r in conn.execute(select(t.sf_records.c.id, t.sf_records.c.system_modstamp)
                              .where(t.sf_records.c.object == sobject, t.sf_records.c.id.in_(ids[i:i + 500]))):
            out[r.id] = r.system_modstamp
    return out


def _mirror(conn: Connection, sobject: str, record_id: str, stamp: dt.datetime, deleted: bool,
            parent: str | None, data: dict[str, Any]) -> None:
    conn.execute(delete(t.sf_records).where(t.sf_records.c.object == sobject, t.sf_records.c.id == record_id))
    conn.execute(insert(t.sf_records).values(object=sobject, id=record_id, system_modstamp=stamp,
                                             is_deleted=deleted, parent_id=parent,
                                             data=json.dumps(data, default=_json_default)))


def mirrored(conn: Connection, sobject: str, *, parent: str | None = None) -> list[dict[str, Any]]:
    """Salesforce records of an object as last taken in (optionally the children of one parent)."""
    query = select(t.sf_records.c.data).where(t.sf_records.c.object == sobject,
                                              t.sf_records.c.is_deleted.is_(False))
    if parent is not None:
        query = query.where(t.sf_records.c.parent_id == parent)
    return [json.loads(d) for d in conn.execute(query).scalars()]


def quarantine(conn: Connection, sobject: str, record_id: str, stamp: dt.datetime, reason: str,
               now: dt.datetime) -> None:
    """Put a record in quarantine (or refresh the reason of one already there)."""
    found = conn.execute(select(t.quarantine.c.first_seen).where(
        t.quarantine.c.object == sobject, t.quarantine.c.record_id == record_id)).first()
    if found:
        conn.execute(update(t.quarantine).where(t.quarantine.c.object == sobject,
                                                t.quarantine.c.record_id == record_id)
                     .values(reason=reason, system_modstamp=stamp, last_seen=now, released_at=None))
    else:
        conn.execute(insert(t.quarantine).values(object=sobject, record_id=record_id, system_modstamp=stamp,
                                                 reason=reason, first_seen=now, last_seen=now))
    log.warning("quarantined %s %s: %s", sobject, record_id, reason)


def release(conn: Connection, sobject: str, record_id: str, now: dt.datetime) -> None:
    """A quarantined record that now maps is released."""
    conn.execute(update(t.quarantine).where(and_(t.quarantine.c.object == sobject,
                                                 t.quarantine.c.record_id == record_id,
                                                 t.quarantine.c.released_at.is_(None)))
                 .values(released_at=now))


def save_cursor(conn: Connection, sobject: str, cursor: dt.datetime, now: dt.datetime) -> None:
    """Save the daemon's cursor of one object."""
    conn.execute(delete(t.sync_cursors).where(t.sync_cursors.c.object == sobject))
    conn.execute(insert(t.sync_cursors).values(object=sobject, cursor=cursor, updated_at=now))


def load_cursor(conn: Connection, sobject: str) -> dt.datetime | None:
    """The daemon's saved cursor of one object."""
    return conn.execute(select(t.sync_cursors.c.cursor).where(t.sync_cursors.c.object == sobject)).scalar()


def remember_owner_name(conn: Connection, owner: Any, name: Any, now: dt.datetime) -> None:
    """Keep the name of the Salesforce user `owner` (an Id) for reports; the latest name read wins."""
    if not owner or not name or str(name).strip() == "":
        return
    owner, name = str(owner), str(name).strip()
    known = conn.execute(select(t.owner_names.c.name).where(t.owner_names.c.id == owner)).scalar()
    if known == name:
        return
    if known is None:
        conn.execute(insert(t.owner_names).values(id=owner, name=name, updated_at=now))
    else:
        conn.execute(update(t.owner_names).where(t.owner_names.c.id == owner).values(name=name, updated_at=now))
