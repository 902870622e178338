"""Create the two tables, or adopt the ones the old FastAPI/SQLAlchemy service made.

The DDL is written out with IF NOT EXISTS instead of generated, so that this migration is
harmless on a database that already holds these tables (no row is touched) and so that the
schema carries the contract's column defaults, role check and descending index. The
CreateModel operations only record the models in Tortoise's migration state.
"""
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import CheckConstraint

from samosachat_api.migration_state import RecordModel
from samosachat_api.models import Role

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS conversations (
        id UUID NOT NULL PRIMARY KEY,
        user_id UUID NOT NULL,
        title VARCHAR(500) NOT NULL DEFAULT 'New conversation',
        model_tag VARCHAR(100) NOT NULL DEFAULT 'default',
        is_favorited BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS ix_conversations_user_updated
        ON conversations (user_id, updated_at DESC)
    """,
    """
    CREATE TABLE IF NOT EXISTS messages (
        id UUID NOT NULL PRIMARY KEY,
        conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role VARCHAR(20) NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        content TEXT NOT NULL,
        token_count INTEGER,
        model_tag VARCHAR(100),
        inference_time_ms INTEGER,
        created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS ix_messages_conversation_created
        ON messages (conversation_id, created_at)
    """,
]


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.RunSQL(SCHEMA, reverse_sql=['DROP TABLE IF EXISTS messages', 'DROP TABLE IF EXISTS conversations']),
        RecordModel(
            name='Conversation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user_id', fields.UUIDField()),
                ('title', fields.CharField(default='New conversation', db_default='New conversation', max_length=500)),
                ('model_tag', fields.CharField(default='default', db_default='default', max_length=100)),
                ('is_favorited', fields.BooleanField(default=False, db_default=False)),
                ('created_at', fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(db_default=Now(), auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'conversations', 'app': 'models', 'indexes': [Index(fields=['user_id', 'updated_at'], name='ix_conversations_user_updated')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        RecordModel(
            name='Message',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('role', fields.CharEnumField(description='USER: user\nASSISTANT: assistant\nSYSTEM: system', enum_type=Role, max_length=20)),
                ('content', fields.TextField(unique=False)),
                ('token_count', fields.IntField(null=True)),
                ('model_tag', fields.CharField(null=True, max_length=100)),
                ('inference_time_ms', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(db_default=Now(), auto_now=False, auto_now_add=True)),
            ],
            options={
                'table': 'messages', 'app': 'models', 'indexes': [Index(fields=['conversation_id', 'created_at'], name='ix_messages_conversation_created')],
                'constraints': [CheckConstraint(check="role IN ('user', 'assistant', 'system')", name='messages_role_check')], 'pk_attr': 'id',
            },
            bases=['Model'],
        ),
    ]
