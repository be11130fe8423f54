"""activation rows checked per batch on PostgreSQL: the rows an activation writes in bulk, and the
line and item metrics its jobs derive from them, no longer carry a per-row foreign-key check there
(issue 11)

Revision ID: 0011
Revises: 0010

An activation writes its order, lines, segments, items, item versions and pending jobs in one
transaction, each table by one COPY per batch of orders; its jobs then write each line's metrics
and each item's TCV. On PostgreSQL every row's foreign key is checked by a look-up that also locks
the referenced row (`SELECT ... FOR KEY SHARE`), about 20-25 µs a row on the project's 2-core
machine: timing each COPY of one 100,000-line import, the six activation tables took 16.9 s with
their keys and 4.5 s without, more than the server spent storing the rows; `line_metrics` took
2.2 s for 100,000 rows where `order_metrics`, without a key since 0010, took 1.2 s for 500,000.
Those keys only ever checked the store's own writing:
- the lines, segments, item versions and jobs refer to rows written in the same transaction, with
  keys the same code has just taken;
- the line and item metrics are projections the jobs work out from the lines and items they have
  just read (as `arr_rows` and `order_metrics`, migration 0010);
- the orders and items refer to accounts and products, which `repository.save_stored_activations`
  now checks once per batch, with one query each, before it writes anything;
- revsync never deletes an account, product, order, line or item, so nothing can later leave a
  row without what it refers to.

SQLite keeps every key: its check is a plain index look-up (no lock, no write), and SQLite cannot
drop a constraint without rebuilding the table, which here would mean rebuilding `order_lines`
under the keys of other tables. `connector/store/schema.py` therefore still declares the keys;
`DROPPED` below lists what PostgreSQL stores lack, and `tests/store/test_activation_keys_migration.py`
checks that nothing else differs.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: (table, column, referred table, referred column) of each key PostgreSQL stores no longer check
DROPPED = (
    ('orders', 'account', 'accounts', 'id'),
    ('order_lines', 'order_id', 'orders', 'id'),
    ('line_segments', 'line_pk', 'order_lines', 'pk'),
    ('items', 'account', 'accounts', 'id'),
    ('items', 'product', 'products', 'id'),
    ('item_versions', 'item', 'items', 'id'),
    ('item_versions', 'line_pk', 'order_lines', 'pk'),
    ('jobs', 'order_id', 'orders', 'id'),
    ('line_metrics', 'line_pk', 'order_lines', 'pk'),
    ('item_metrics', 'item', 'items', 'id'),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    found = sa.inspect(bind)
    for table in dict.fromkeys(name for name, *_ in DROPPED):
        dropped = {((column,), referred) for name, column, referred, _ in DROPPED if name == table}
        for key in found.get_foreign_keys(table):
            if (tuple(key['constrained_columns']), key['referred_table']) in dropped:
                op.drop_constraint(key['name'], table, type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column, referred, referred_column in DROPPED:
        op.create_foreign_key(f'{table}_{column}_fkey', table, referred, [column], [referred_column])
