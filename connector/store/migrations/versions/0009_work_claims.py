"""work claims: the accounts `revsync worker` processes have claimed (PostgreSQL, issue: workers)

Revision ID: 0009
Revises: 0008

One row per account with background jobs, claimed whole by one worker at a time with
SELECT … FOR UPDATE SKIP LOCKED; `expires_at` lets another worker take over the claim of one
that was killed. Rows are made by the workers themselves; a store without workers keeps it empty.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('work_claims',
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('claimed_by', sa.String(length=255), nullable=True),
    sa.Column('token', sa.String(length=32), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account')
    )


def downgrade() -> None:
    op.drop_table('work_claims')
