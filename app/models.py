"""Tortoise models shared by every domain (the `core` app)."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class IdempotencyRecord(Model):
    """One Idempotency-Key of one caller: the request it stood for and, once done, the
    response to replay. Keys are scoped per caller so two clients never collide."""

    id = fields.BigIntField(primary_key=True)
    owner = fields.CharField(max_length=128)
    key = fields.CharField(max_length=255)
    request_hash = fields.CharField(max_length=64)
    state = fields.CharField(max_length=16)  # in_progress | done
    status = fields.IntField(null=True)
    response: Any = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    locked_until = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "core_idempotency_record"
        unique_together = (("owner", "key"),)
