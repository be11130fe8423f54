"""big-object rows written: what the capacity check counts as held in the org (issue 12)

Revision ID: 0006
Revises: 0005

Existing stores are filled from the outbox: a line whose rows reached a big object (a SUCCESS
entry) holds its current ARR rows there. That may count an evergreen line's newest rows before
they are written (their entry still NEW): the check errs towards stopping early, never late.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('big_object_rows',
    sa.Column('object', sa.String(length=64), nullable=False),
    sa.Column('line_pk', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('object', 'line_pk')
    )
    conn = op.get_bind()
    written = set()
    for sobject, payload in conn.execute(sa.text(
            "SELECT object, payload FROM outbox WHERE kind = 'big_object' AND state = 'SUCCESS'")):
        written.add((sobject, int(json.loads(payload)["line_pk"])))
    if not written:
        return
    counts = dict(conn.execute(sa.text("SELECT line_pk, COUNT(*) FROM arr_rows GROUP BY line_pk")).all())
    op.bulk_insert(table, [{"object": o, "line_pk": pk, "rows": counts[pk]}
                           for o, pk in sorted(written) if counts.get(pk)])


def downgrade() -> None:
    op.drop_table('big_object_rows')
