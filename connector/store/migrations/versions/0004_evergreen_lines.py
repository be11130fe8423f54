"""evergreen lines: order lines and items that run until cancelled (issue 9)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('order_lines', 'items'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('evergreen', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+): a batch copy would drop order_lines under its foreign keys
    for table in ('items', 'order_lines'):
        op.drop_column(table, 'evergreen')
