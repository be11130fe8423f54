"""activation rows checked per batch on PostgreSQL: the rows an activation writes in bulk no longer
carry a per-row foreign-key check there (issue 11)

Revision ID: 0011
Revises: 0010

An activation writes its order, lines, segments, items, item versions and pending jobs in one
transaction, each table by one COPY per batch of orders. On PostgreSQL every row's foreign key is
checked by a look-up that also locks the referenced row (`SELECT ... FOR KEY SHARE`), about 25 µs a
row on the project's 2-core machine: 12 of the 35 s of importing 100,000 order lines, more than the
server spent storing the rows. Those keys only ever checked the store's own writing:
- the lines, segments, item versions and jobs refer to rows written in the same transaction, with
  keys the same code has just taken;
- the orders and items refer to accounts and products, which `repository.save_stored_activations`
  now checks once per batch, with one query each, before it writes anything;
- revsync never deletes an account, product, order, line or item, so nothing can later leave a
  row without what it refers to.

SQLite keeps every key: its check is a plain index look-up (no lock, no write), and SQLite cannot
drop a constraint without rebuilding the table, which here would mean rebuilding `order_lines`
under the keys of four other tables. `connector/store/schema.py` therefore still declares the keys;
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
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    found = sa.inspect(bind)
    for table in dict.fromkeys(name for name, *_ in DROPPED):
        dropped = {(column, referred) for name, column, referred, _ in DROPPED if name == table}
        for key in found.get_foreign_keys(table):
            if (tuple(key['constrained_columns']), key['referred_table']) in {((c,), r) for c, r in dropped}:
                op.drop_constraint(key['name'], table, type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column, referred, referred_column in DROPPED:
        op.create_foreign_key(f'{table}_{column}_fkey', table, referred, [column], [referred_column])
