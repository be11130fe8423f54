"""fiscal period labels: Salesforce's name of each Period read (FullyQualifiedLabel), for reports

Revision ID: 0008
Revises: 0007

Periods read before this revision take the FullyQualifiedLabel of the record as it was read (the
mirror in sf_records), the field the default mapping (mappings/Period.toml) reads as `label`.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('fiscal_periods', sa.Column('label', sa.String(length=80), nullable=True))
    conn = op.get_bind()
    periods = sa.table('fiscal_periods', sa.column('id', sa.String), sa.column('label', sa.String))
    mirror = sa.table('sf_records', sa.column('object', sa.String), sa.column('id', sa.String),
                      sa.column('data', sa.Text))
    for record_id, data in conn.execute(sa.select(mirror.c.id, mirror.c.data).where(mirror.c.object == 'Period')).all():
        try:
            label = json.loads(data).get('FullyQualifiedLabel')
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(label, str) and label:
            conn.execute(periods.update().where(periods.c.id == record_id).values(label=label[:80]))


def downgrade() -> None:
    op.drop_column('fiscal_periods', 'label')
