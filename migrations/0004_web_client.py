"""What the web client needs: whether a title was chosen with a rename, and whether a stored
answer is complete or was stopped part-way.

Added with IF NOT EXISTS and defaults (existing conversations: not renamed; existing answers:
complete): harmless on the old service's tables and on a database that has them already.
AddField records them in Tortoise's state.
"""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from samosachat_api.migration_state import RecordField
from samosachat_api.models import MessageStatus


class Migration(migrations.Migration):
    dependencies = [('models', '0003_answer_lease')]

    initial = False

    operations = [
        ops.RunSQL(
            [
                'ALTER TABLE conversations ADD COLUMN IF NOT EXISTS title_set_by_user BOOLEAN NOT NULL DEFAULT false',
                "ALTER TABLE messages ADD COLUMN IF NOT EXISTS status VARCHAR(20) NOT NULL DEFAULT 'complete'",
            ],
            reverse_sql=[
                'ALTER TABLE conversations DROP COLUMN IF EXISTS title_set_by_user',
                'ALTER TABLE messages DROP COLUMN IF EXISTS status',
            ],
        ),
        RecordField(model_name='Conversation', name='title_set_by_user', field=fields.BooleanField(default=False, db_default=False)),
        RecordField(
            model_name='Message',
            name='status',
            field=fields.CharEnumField(
                MessageStatus, default=MessageStatus.COMPLETE, db_default=MessageStatus.COMPLETE, max_length=20
            ),
        ),
    ]
