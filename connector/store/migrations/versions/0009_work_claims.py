"""work claims: the accounts `revsync worker` processes have claimed, and the activations the daemon
leaves to them (PostgreSQL, issue: workers)

Revision ID: 0009
Revises: 0008

`work_claims`: one row per account with engine work, claimed whole by one worker at a time with
SELECT … FOR UPDATE SKIP LOCKED; `expires_at` lets another worker take over the claim of one that
was killed. `activation_queue`: Salesforce-activated orders read by the daemon, with the activation
sequence number it gave them, for the workers to activate. A store without workers keeps both empty.
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
    op.create_table('activation_queue',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('system_modstamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('items', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('staged_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_activation_queue_account'), 'activation_queue', ['account'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_activation_queue_account'), table_name='activation_queue')
    op.drop_table('activation_queue')
    op.drop_table('work_claims')
