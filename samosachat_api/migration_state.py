"""Migration operations that only record a change in Tortoise's migration state.

The migrations write their own SQL (IF NOT EXISTS, so that they adopt the old service's tables and
run twice harmlessly); these record the same models and fields for `makemigrations`.
"""

from __future__ import annotations

from tortoise.migrations import operations as ops


class _StateOnly:
    async def database_forward(self, *args, **kwargs) -> None:
        return None

    async def database_backward(self, *args, **kwargs) -> None:
        return None


class RecordModel(_StateOnly, ops.CreateModel):
    """CreateModel for the migration state only."""


class RecordField(_StateOnly, ops.AddField):
    """AddField for the migration state only."""


class RecordConstraint(_StateOnly, ops.AddConstraint):
    """AddConstraint for the migration state only."""
