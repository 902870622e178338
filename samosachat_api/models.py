"""The two tables the service shares with the old chat API: conversations and messages."""

from __future__ import annotations

from enum import Enum
from uuid import UUID

from tortoise import fields
from tortoise.fields.db_defaults import Now
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint, UniqueConstraint
from tortoise.models import Model
from tortoise.timezone import now

DEFAULT_TITLE = "New conversation"
DEFAULT_MODEL_TAG = "default"


class Role(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageStatus(str, Enum):
    COMPLETE = "complete"
    STOPPED = "stopped"  # an answer kept as it stood when it was stopped (stop, shutdown, a dead worker)


class Conversation(Model):
    id = fields.UUIDField(primary_key=True)
    user_id = fields.UUIDField()
    title = fields.CharField(max_length=500, default=DEFAULT_TITLE, db_default=DEFAULT_TITLE)
    model_tag = fields.CharField(max_length=100, default=DEFAULT_MODEL_TAG, db_default=DEFAULT_MODEL_TAG)
    is_favorited = fields.BooleanField(default=False, db_default=False)
    # A rename; a title given at creation is a placeholder.
    title_set_by_user = fields.BooleanField(default=False, db_default=False)
    # default=now: the service's clock stamps the rows Tortoise inserts (with db_default alone,
    # Tortoise leaves the value to the database).
    created_at = fields.DatetimeField(auto_now_add=True, default=now, db_default=Now())
    updated_at = fields.DatetimeField(auto_now=True, default=now, db_default=Now())
    # Who generates its answer and until when (without Redis): see samosachat_api/answers/leases.py.
    answer_lease_owner = fields.CharField(max_length=64, null=True)
    answer_lease_until = fields.DatetimeField(null=True)

    messages: fields.ReverseRelation[Message]

    class Meta:
        table = "conversations"
        # Migration 0001 makes it descending on updated_at, as the old service's was; Tortoise 1.1's
        # Index takes no order (and PostgreSQL reads an index backwards as fast).
        indexes = [Index(fields=("user_id", "updated_at"), name="ix_conversations_user_updated")]


class Message(Model):
    id = fields.UUIDField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    role = fields.CharEnumField(Role, max_length=20)
    content = fields.TextField()
    token_count = fields.IntField(null=True)
    model_tag = fields.CharField(max_length=100, null=True)
    inference_time_ms = fields.IntField(null=True)
    time_to_first_token_ms = fields.IntField(null=True)
    status = fields.CharEnumField(
        MessageStatus, max_length=20, default=MessageStatus.COMPLETE, db_default=MessageStatus.COMPLETE
    )
    idempotency_key = fields.CharField(max_length=200, null=True)  # a question's
    created_at = fields.DatetimeField(auto_now_add=True, default=now, db_default=Now())  # default=now: see Conversation

    conversation_id: UUID

    class Meta:
        table = "messages"
        indexes = [
            Index(fields=("conversation_id", "created_at"), name="ix_messages_conversation_created")
        ]
        # Made by migrations 0005 (the unique index) and 0001 (the check); generate_schemas() skips them.
        constraints = [
            UniqueConstraint(fields=("conversation", "idempotency_key"), name="ux_messages_idempotency_key"),
            CheckConstraint(check="role IN ('user', 'assistant', 'system')", name="messages_role_check"),
        ]
