"""The answer lease on conversations: who generates its answer and until when (without Redis).

Two nullable columns, added with IF NOT EXISTS: harmless on the old service's table (no row
changes) and on a database where they already exist. AddField records them in Tortoise's state.
"""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from samosachat_api.migration_state import RecordField


class Migration(migrations.Migration):
    dependencies = [('models', '0002_time_to_first_token')]

    initial = False

    operations = [
        ops.RunSQL(
            [
                'ALTER TABLE conversations ADD COLUMN IF NOT EXISTS answer_lease_owner VARCHAR(64)',
                'ALTER TABLE conversations ADD COLUMN IF NOT EXISTS answer_lease_until TIMESTAMPTZ',
            ],
            reverse_sql=[
                'ALTER TABLE conversations DROP COLUMN IF EXISTS answer_lease_owner',
                'ALTER TABLE conversations DROP COLUMN IF EXISTS answer_lease_until',
            ],
        ),
        RecordField(model_name='Conversation', name='answer_lease_owner', field=fields.CharField(null=True, max_length=64)),
        RecordField(model_name='Conversation', name='answer_lease_until', field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
    ]
