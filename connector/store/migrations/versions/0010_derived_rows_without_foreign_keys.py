"""derived rows without foreign keys: `arr_rows` and `order_metrics` no longer carry a foreign key
to `order_lines` (issue 11)

Revision ID: 0010
Revises: 0009

Both tables are projections of the order lines that the background jobs write in bulk, taking each
`line_pk` from the lines they have just read, and order lines are never deleted; so the key only
ever checked the jobs' own arithmetic, at a price: on PostgreSQL its per-row check (a locking
look-up in `order_lines` for each of the ~20 ARR rows of every line) was about three quarters of
the time of writing the rows. Their primary keys, which keep a row from being written twice, stay.

PostgreSQL drops the constraints by the names the server gave them. SQLite cannot drop a
constraint, so each table is rebuilt (same columns, primary key and WITHOUT ROWID clustering) and
its rows copied, in the migration's one transaction.
"""
from alembic import op
import sqlalchemy as sa

import connector.store.types


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('arr_rows', 'order_metrics')


def _definition(metadata: sa.MetaData, name: str, *, keyed: bool) -> sa.Table:
    """The table as revision 0001 made it, with (`keyed`) or without its foreign key to order_lines."""
    key = (sa.ForeignKeyConstraint(['line_pk'], ['order_lines.pk']),) if keyed else ()
    if name == 'arr_rows':
        return sa.Table(
            name, metadata,
            sa.Column('line_pk', sa.Integer(), nullable=False),
            sa.Column('period_start', sa.Date(), nullable=False),
            sa.Column('period_end', sa.Date(), nullable=False),
            sa.Column('opening_cmrr', connector.store.types.Money(), nullable=False),
            sa.Column('closing_cmrr', connector.store.types.Money(), nullable=False),
            sa.Column('opening_arr', connector.store.types.Money(), nullable=False),
            sa.Column('closing_arr', connector.store.types.Money(), nullable=False),
            *key,
            sa.PrimaryKeyConstraint('line_pk', 'period_start'),
            sqlite_with_rowid=False)
    return sa.Table(
        name, metadata,
        sa.Column('line_pk', sa.Integer(), nullable=False),
        sa.Column('metric', sa.String(length=16), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('amount', connector.store.types.Money(), nullable=False),
        sa.Column('start', sa.Date(), nullable=False),
        sa.Column('end', sa.Date(), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('generated_reason', sa.String(length=32), nullable=False),
        *key,
        sa.PrimaryKeyConstraint('line_pk', 'metric', 'seq'),
        sqlite_with_rowid=False)


def _rebuild_sqlite(name: str, *, keyed: bool) -> None:
    """Make the table anew (with or without the key) and copy its rows, in key order."""
    bind = op.get_bind()
    metadata = sa.MetaData()
    sa.Table('order_lines', metadata, sa.Column('pk', sa.Integer(), primary_key=True))  # the key's target
    table = _definition(metadata, name, keyed=keyed)
    columns = ', '.join(f'"{c.name}"' for c in table.columns)
    staged = f'_revsync_new_{name}'
    ddl = str(sa.schema.CreateTable(table).compile(dialect=bind.dialect))
    op.execute(ddl.replace(f'CREATE TABLE {name} ', f'CREATE TABLE "{staged}" ', 1))
    op.execute(f'INSERT INTO "{staged}" ({columns}) SELECT {columns} FROM "{name}"')
    op.execute(f'DROP TABLE "{name}"')
    op.execute(f'ALTER TABLE "{staged}" RENAME TO "{name}"')


def upgrade() -> None:
    bind = op.get_bind()
    for name in TABLES:
        if bind.dialect.name == 'sqlite':
            _rebuild_sqlite(name, keyed=False)
            continue
        for key in sa.inspect(bind).get_foreign_keys(name):
            if key['referred_table'] == 'order_lines':
                op.drop_constraint(key['name'], name, type_='foreignkey')


def downgrade() -> None:
    bind = op.get_bind()
    for name in TABLES:
        if bind.dialect.name == 'sqlite':
            _rebuild_sqlite(name, keyed=True)
        else:
            op.create_foreign_key(f'{name}_line_pk_fkey', name, 'order_lines', ['line_pk'], ['pk'])
