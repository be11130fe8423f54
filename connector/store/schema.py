"""Tables of the store. Changes to them go through an Alembic migration (connector/store/migrations)."""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean, Column, Date, ForeignKey, Index, Integer, MetaData, PrimaryKeyConstraint,
    String, Table, Text, UniqueConstraint, false,
)

from connector.store.types import ExactDecimal, Money, UtcDateTime

metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("bill_cycle_day", Integer),
    Column("tcv", Money, nullable=False, default=0),
    Column("customer_since", Date),
)

# An account's TCV in each currency it buys in (SPEC section 6: figures in different currencies
# are never added together). `accounts.tcv` is kept for older readers; reports use this table.
account_metrics = Table(
    "account_metrics", metadata,
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("tcv", Money, nullable=False),
    PrimaryKeyConstraint("account", "currency"),
)

account_links = Table(
    "account_links", metadata,
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("related", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("order_id", String(64), nullable=False),
    PrimaryKeyConstraint("account", "role", "related"),
)

products = Table(
    "products", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("provisioning", String(16), nullable=False),
    Column("list_price", ExactDecimal, nullable=False),
    Column("price_period", String(16), nullable=False),
)

credits = Table(
    "credits", metadata,
    Column("id", String(128), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Money, nullable=False),
)

# What an activation writes in bulk (orders, order_lines, line_segments, items, item_versions, jobs)
# and the line and item metrics its jobs derive declare their foreign keys here, and SQLite stores
# keep them; PostgreSQL stores do not check them row by row (migration 0011: about 20-25 µs a row,
# a third of a large import), and `repository.save_stored_activations` checks the accounts and
# products a batch names instead.
orders = Table(
    "orders", metadata,
    Column("id", String(64), primary_key=True),
    Column("seq", Integer, nullable=False, unique=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("owner", Text, nullable=False),
    Column("booked_on", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("bill_to", String(64)),
    Column("sold_to", String(64)),
    Column("origin", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("activated_at", UtcDateTime, nullable=False),
)

order_lines = Table(
    "order_lines", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("action", String(8), nullable=False),
    Column("product", String(64), nullable=False),
    Column("product_name", Text, nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("item", String(64), nullable=False, index=True),
    Column("item_kind", String(16), nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("unit_price", ExactDecimal, nullable=False),
    Column("price_period", String(16), nullable=False),
    Column("list_price_monthly", ExactDecimal, nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("billing_frequency", String(8), nullable=False),
    Column("credit_eligible", Boolean, nullable=False),
    Column("change_category", String(32), nullable=False),
    Column("one_time_amount", ExactDecimal, nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("tcv", Money, nullable=False),
    # an evergreen line's `end` is the horizon it is materialized to (engine.arr_by_period)
    Column("evergreen", Boolean, nullable=False, server_default=false()),
)

line_segments = Table(
    "line_segments", metadata,
    Column("line_pk", Integer, ForeignKey("order_lines.pk"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("start", Date, nullable=False),
    Column("end_excl", Date, nullable=False),
    Column("mrr", ExactDecimal, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    PrimaryKeyConstraint("line_pk", "seq"),
)

items = Table(
    "items", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("product", String(64), ForeignKey("products.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("term_start", Date, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("unit_price", ExactDecimal, nullable=False),
    Column("price_period", String(16), nullable=False),
    Column("bill_cycle_day", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("last_line", String(64), nullable=False),
    # runs until cancelled: `end` is the horizon, moved forward by `revsync jobs extend-evergreen`
    Column("evergreen", Boolean, nullable=False, server_default=false()),
)

item_versions = Table(
    "item_versions", metadata,
    Column("item", String(64), ForeignKey("items.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("line_pk", Integer, ForeignKey("order_lines.pk"), nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    Column("unit_price", ExactDecimal, nullable=False),
    Column("status", String(16), nullable=False),
    PrimaryKeyConstraint("item", "version"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    UniqueConstraint("order_id", "kind"),
    Index("ix_jobs_status", "status"),
)

# Engine work taken by `revsync worker` processes on PostgreSQL (connector.workers): one row per
# account that has had background jobs, the partition a worker claims whole, so that one account's
# orders are processed in activation order by one worker at a time. A claim names its worker and a
# fresh token, and lapses at `expires_at` unless renewed: the claim of a killed worker is taken over.
work_claims = Table(
    "work_claims", metadata,
    Column("account", String(64), primary_key=True),
    Column("claimed_by", String(255)),
    Column("token", String(32)),
    Column("expires_at", UtcDateTime),
)

# Salesforce-activated orders the daemon has read (with their items, fresh from Salesforce) and left
# for the workers to activate (`[workers] enabled`, PostgreSQL). Each keeps the activation sequence
# number the daemon gave it (`orders.seq` once activated, so the activation order is the daemon's
# whoever activates it); activating or quarantining an order removes its row.
activation_queue = Table(
    "activation_queue", metadata,
    Column("order_id", String(64), primary_key=True),
    Column("account", String(64), nullable=False, index=True),
    Column("seq", Integer, nullable=False, unique=True),
    Column("system_modstamp", UtcDateTime, nullable=False),
    Column("data", Text, nullable=False),  # the mapped order (JSON)
    Column("items", Text),  # its mapped items (JSON list); null when they cannot be mapped:
    Column("error", Text),  # then why, and the order is quarantined by the worker
    Column("staged_at", UtcDateTime, nullable=False),
)

line_metrics = Table(
    "line_metrics", metadata,
    Column("line_pk", Integer, ForeignKey("order_lines.pk"), primary_key=True),
    Column("mrr", Money, nullable=False),
    Column("tcv", Money, nullable=False),
)

item_metrics = Table(
    "item_metrics", metadata,
    Column("item", String(64), ForeignKey("items.id"), primary_key=True),
    Column("tcv", Money, nullable=False),
)

# `order_metrics` and `arr_rows`: projections of the order lines, written in bulk by the jobs; no
# foreign key to order_lines (its per-row check cost about three quarters of writing the rows on
# PostgreSQL, and lines are never deleted; migration 0010)
order_metrics = Table(
    "order_metrics", metadata,
    Column("line_pk", Integer, nullable=False),
    Column("metric", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("amount", Money, nullable=False),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("type", String(16), nullable=False),
    Column("generated_reason", String(32), nullable=False),
    PrimaryKeyConstraint("line_pk", "metric", "seq"),
    sqlite_with_rowid=False,
)

credit_drawdowns = Table(
    "credit_drawdowns", metadata,
    Column("line_pk", Integer, ForeignKey("order_lines.pk"), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False, index=True),
    Column("account", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Money, nullable=False),
    Column("net_amount", Money, nullable=False),
)

arr_rows = Table(
    "arr_rows", metadata,
    Column("line_pk", Integer, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("opening_cmrr", Money, nullable=False),
    Column("closing_cmrr", Money, nullable=False),
    Column("opening_arr", Money, nullable=False),
    Column("closing_arr", Money, nullable=False),
    PrimaryKeyConstraint("line_pk", "period_start"),
    # Clustered on its key in SQLite: rows arrive in key order, so inserts append.
    sqlite_with_rowid=False,
)

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- reading Salesforce (issue: change polling and backfill) -----------------------------------

sync_cursors = Table(
    "sync_cursors", metadata,
    Column("object", String(64), primary_key=True),
    Column("cursor", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

#: `sf_records.object` of synced drafts: the engine's copy of a Salesforce Draft order (mapped order and
#: lines), kept beside the mirror, since a draft has no place among the engine's activated orders.
DRAFT = "DraftOrder"

# The last version of every Salesforce record taken in, for deduplication by (Id, SystemModstamp)
# and as a local mirror of the records orders are assembled from (quotes, lines, opportunities).
sf_records = Table(
    "sf_records", metadata,
    Column("object", String(64), nullable=False),
    Column("id", String(18), nullable=False),
    Column("system_modstamp", UtcDateTime, nullable=False),
    Column("is_deleted", Boolean, nullable=False),
    Column("parent_id", String(18)),
    Column("data", Text, nullable=False),
    PrimaryKeyConstraint("object", "id"),
    Index("ix_sf_records_parent", "object", "parent_id"),
)

quarantine = Table(
    "quarantine", metadata,
    Column("object", String(64), nullable=False),
    Column("record_id", String(18), nullable=False),
    Column("system_modstamp", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("released_at", UtcDateTime),
    PrimaryKeyConstraint("object", "record_id"),
)

# The name of each Salesforce user that owns an order (orders keep the User Id, which is written
# back): read with the orders (`owner_name`, `Owner.Name` in mappings/Order.toml), the latest wins.
owner_names = Table(
    "owner_names", metadata,
    Column("id", String(18), primary_key=True),
    Column("name", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

fiscal_periods = Table(
    "fiscal_periods", metadata,
    Column("id", String(18), primary_key=True),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("fiscal_year", Integer),
    Column("quarter", Integer),
    Column("label", String(80)),  # Period.FullyQualifiedLabel: "January FY2023"
)

backfills = Table(
    "backfills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("since", UtcDateTime, nullable=False),
    Column("until", UtcDateTime, nullable=False),
    Column("objects", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
)

backfill_progress = Table(
    "backfill_progress", metadata,
    Column("backfill_id", Integer, ForeignKey("backfills.id"), nullable=False),
    Column("object", String(64), nullable=False),
    Column("bulk_job_id", String(18)),
    Column("locator", Text),
    Column("records", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),
    PrimaryKeyConstraint("backfill_id", "object"),
)

# --- writing Salesforce and receiving changes (issue: write-back, daemon, outbound messages) ---

class OutboxState(StrEnum):
    """An outbox entry's state, stored and shown (`revsync outbox`, the metrics) as this text."""

    NEW = "NEW"  # to send (again: a transient failure, a reference not written yet)
    PENDING = "PENDING"  # in flight; after a crash it is sent again
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # Salesforce refused it; `revsync outbox retry` makes it NEW again
    IGNORED = "IGNORED"  # `revsync outbox ignore`: never sent


class JobStatus(StrEnum):
    """A background job's status, stored and shown (`revsync jobs`) as this text."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Every write to Salesforce, written in the same transaction as the engine change that causes it.
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object", String(64), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # record | big_object | order | activate
    Column("order_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),  # NEW | PENDING | SUCCESS | FAILED | IGNORED
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_message", Text),
    Column("batch", String(64)),  # the bulk job or collection call it was sent in
    Column("sf_id", String(18)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_outbox_state", "state", "object"),
    Index("ix_outbox_record", "object", "external_id"),
)

# Salesforce Ids of what the connector wrote, by external id: Id-valued fields of later writes
# (big object rows, order items) hold them once the record exists.
sf_ids = Table(
    "sf_ids", metadata,
    Column("object", String(64), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("sf_id", String(18), nullable=False),
    PrimaryKeyConstraint("object", "external_id"),
)

# Big-object rows this connector has written and not deleted, per line and big object: what the
# capacity check (connector.capacity) counts as held in the org. Big-object inserts replace the row
# with the same index (one row per line and period), so a line's count is that of its last write.
big_object_rows = Table(
    "big_object_rows", metadata,
    Column("object", String(64), nullable=False),
    Column("line_pk", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    PrimaryKeyConstraint("object", "line_pk"),
)

# Outbound Messages received, stored before the acknowledgement is sent.
notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", String(64), nullable=False, unique=True),
    Column("object", String(64), nullable=False),
    Column("record_id", String(18), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("processed_at", UtcDateTime),
    Index("ix_notifications_pending", "processed_at"),
)
