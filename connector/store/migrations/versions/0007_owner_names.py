"""owner names: the name of each Salesforce user that owns an order (issue 10)

Revision ID: 0007
Revises: 0006

Salesforce-origin orders keep their owner as a User Id (it is written back as one); reports show
the name beside it and `--owner` takes either. Names arrive with the orders read from now on
(`Owner.Name` in mappings/Order.toml); for orders taken in before, `revsync backfill --objects Order`
fills them in.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('owner_names',
    sa.Column('id', sa.String(length=18), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('owner_names')
