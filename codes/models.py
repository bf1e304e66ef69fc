"""Tortoise models of the codes domain: subject handles, health status (current and
history) and revocations. Other domains' objects are referred to by id strings."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class CodeSubject(Model):
    """The random 64-bit handle that stands for a subject inside codes (sealed, never in
    clear): a handle reveals nothing about the subject id it maps to."""

    handle = fields.BigIntField(primary_key=True, generated=False)
    subject_id = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "codes_subject"


class HealthStatus(Model):
    """A subject's current status as the authority last set it. `version` orders writes
    (the cache and this row keep the highest); after `valid_until` the default applies."""

    subject_id = fields.CharField(max_length=64, primary_key=True)
    status = fields.CharField(max_length=8)
    reason = fields.CharField(max_length=500)
    valid_until = fields.DatetimeField(null=True)
    version = fields.BigIntField()
    set_by = fields.CharField(max_length=64)
    set_at = fields.DatetimeField()

    class Meta:
        table = "codes_health_status"


class HealthStatusChange(Model):
    """Every status change ever made (append-only history)."""

    id = fields.BigIntField(primary_key=True)
    subject_id = fields.CharField(max_length=64, db_index=True)
    status = fields.CharField(max_length=8)
    reason = fields.CharField(max_length=500)
    valid_until = fields.DatetimeField(null=True)
    version = fields.BigIntField()
    set_by = fields.CharField(max_length=64)
    set_at = fields.DatetimeField()

    class Meta:
        table = "codes_health_status_change"


class CodeRevocation(Model):
    """A revocation: one row for the subject (`code_id` null) and one per code that was
    live at that moment. `id` is the cursor of GET /v1/codes/revocations; `not_after` is
    when the entry stops mattering (every code it names has expired by then)."""

    id = fields.BigIntField(primary_key=True)
    subject_id = fields.CharField(max_length=64, db_index=True)
    code_id = fields.CharField(max_length=32, null=True)
    revoked_at = fields.DatetimeField()
    not_after = fields.DatetimeField()
    actor = fields.CharField(max_length=64)

    class Meta:
        table = "codes_revocation"


class PrintedCode(Model):
    """A printed long-lived code (离线码, code type 3): its random id (the code id), whose
    card it is, where it was issued and its life. Only a subject's newest card is valid:
    issuing one revokes the older ones (each also gets a `CodeRevocation` row)."""

    id = fields.CharField(max_length=32, primary_key=True)
    subject_id = fields.CharField(max_length=64, db_index=True)
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    # The kiosk's location printed on the card, and the kiosk that issued it.
    issuing_point = fields.CharField(max_length=100)
    issued_by = fields.CharField(max_length=64)
    revoked_at = fields.DatetimeField(null=True)
    revoked_by = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "codes_printed_code"
