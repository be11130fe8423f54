"""account metrics per currency: an account's TCV in each currency it buys in

Revision ID: 0005
Revises: 0004

`accounts.tcv` added every line's TCV whatever its currency; `account_metrics` keeps one TCV per
(account, currency). Existing stores are filled from the stored lines (an account's TCV is the
sum of its lines' stored TCV, SPEC section 6), so nothing needs re-importing.
"""
from alembic import op
import sqlalchemy as sa
import connector.store.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_metrics',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tcv', connector.store.types.Money(), nullable=False),
    sa.ForeignKeyConstraint(['account'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account', 'currency')
    )
    op.execute("INSERT INTO account_metrics (account, currency, tcv) "
               "SELECT o.account, o.currency, SUM(l.tcv) FROM order_lines l "
               "JOIN orders o ON o.id = l.order_id GROUP BY o.account, o.currency")


def downgrade() -> None:
    op.drop_table('account_metrics')
