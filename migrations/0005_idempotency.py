"""Idempotency keys of questions: a retried ask with the same `Idempotency-Key` stores nothing new.

A nullable column and a unique index per conversation, added with IF NOT EXISTS: harmless on the
old service's table and on a database that has them already. RecordField and RecordConstraint
record them in Tortoise's state.
"""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

from samosachat_api.migration_state import RecordConstraint, RecordField


class Migration(migrations.Migration):
    dependencies = [('models', '0004_web_client')]

    initial = False

    operations = [
        ops.RunSQL(
            [
                'ALTER TABLE messages ADD COLUMN IF NOT EXISTS idempotency_key VARCHAR(200)',
                'CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_idempotency_key ON messages (conversation_id, idempotency_key)',
            ],
            reverse_sql=[
                'DROP INDEX IF EXISTS ux_messages_idempotency_key',
                'ALTER TABLE messages DROP COLUMN IF EXISTS idempotency_key',
            ],
        ),
        RecordField(model_name='Message', name='idempotency_key', field=fields.CharField(null=True, max_length=200)),
        RecordConstraint(
            model_name='Message',
            constraint=UniqueConstraint(fields=('conversation', 'idempotency_key'), name='ux_messages_idempotency_key'),
        ),
    ]
