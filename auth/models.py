"""Tortoise models of the auth domain: accounts, the people behind them (subjects),
guardianships, refresh tokens, machine clients, consents and the audit trail.

Personal values are stored only encrypted (`*_enc`) and found by blind index (`*_index`).
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Account(Model):
    """A resident's login, keyed by mobile number."""

    id = fields.CharField(max_length=32, primary_key=True)
    phone_index = fields.CharField(max_length=64, unique=True)
    phone_enc = fields.TextField()
    # The person this account is, once real-name identity is bound.
    subject: fields.OneToOneNullableRelation[Subject] = fields.OneToOneField(
        "auth.Subject", related_name="account", null=True, on_delete=fields.RESTRICT
    )
    subject_id: str | None
    # Kept beside the guardianships so the profile needs no second query when it is 0,
    # and so the limit is checked on the row that is locked while adding.
    dependents = fields.SmallIntField(default=0)
    created_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "auth_account"


class Subject(Model):
    """A real-name person: an account holder, a dependent, or both over time. `id` is the
    opaque subject id the rest of the system knows (random, derived from nothing)."""

    id = fields.CharField(max_length=32, primary_key=True)
    id_number_index = fields.CharField(max_length=64, unique=True)
    id_number_enc = fields.TextField()
    name_enc = fields.TextField()
    name_index = fields.CharField(max_length=64)
    # The masked form is what gates display; keeping it avoids decrypting on every scan.
    masked_name = fields.CharField(max_length=40)
    masked_id_number = fields.CharField(max_length=18)
    birth_date = fields.DateField()
    # The account whose own identity this is (None while only a dependent).
    owner_account_id = fields.CharField(max_length=32, null=True, unique=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "auth_subject"


class Guardianship(Model):
    """A resident (guardian account) may act for a dependent subject."""

    id = fields.IntField(primary_key=True)
    guardian_account_id = fields.CharField(max_length=32, db_index=True)
    subject: fields.ForeignKeyRelation[Subject] = fields.ForeignKeyField(
        "auth.Subject", related_name="guardianships", on_delete=fields.RESTRICT
    )
    subject_id: str
    relation = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "auth_guardianship"
        unique_together = (("guardian_account_id", "subject"),)


class Consent(Model):
    """A one-time code an account holder gives a relative so they may add them as a
    dependent. Only the code's hash is kept."""

    id = fields.CharField(max_length=32, primary_key=True)
    subject_id = fields.CharField(max_length=32, db_index=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by_account_id = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "auth_consent"


class RefreshToken(Model):
    """One refresh token of a login family, stored only as its SHA-256."""

    id = fields.CharField(max_length=32, primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    family_id = fields.CharField(max_length=32, db_index=True)
    account_id = fields.CharField(max_length=32, db_index=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "auth_refresh_token"


class Client(Model):
    """A machine client (gate, hospital, authority, operator, admin, kiosk)."""

    id = fields.CharField(max_length=40, primary_key=True)
    kind = fields.CharField(max_length=16)
    tenant_id = fields.CharField(max_length=64, null=True, db_index=True)
    scope = fields.CharField(max_length=255)
    secret_hash = fields.CharField(max_length=64)
    # Bumped on every rotation; tokens carry it, so rotation retires them too.
    generation = fields.IntField(default=1)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=64)
    rotated_at = fields.DatetimeField(null=True)
    disabled_at = fields.DatetimeField(null=True)
    # Where a kiosk stands (printed on its cards and slips); None for other kinds.
    location = fields.CharField(max_length=100, null=True)

    class Meta:
        table = "auth_client"


class KioskSession(Model):
    """A resident identified at a kiosk: pending until the OTP is confirmed, then its
    delegated access token lives until `expires_at` or until the session ends."""

    id = fields.CharField(max_length=32, primary_key=True)
    kiosk_id = fields.CharField(max_length=40, db_index=True)
    account_id = fields.CharField(max_length=32, db_index=True)
    subject_id = fields.CharField(max_length=32)
    started_at = fields.DatetimeField()
    # Pending: the OTP must come before this; active: the token's expiry.
    expires_at = fields.DatetimeField()
    confirmed_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "auth_kiosk_session"


class AuditEvent(Model):
    """A security event. Never holds a secret, token, OTP, name or ID number."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=80)
    action = fields.CharField(max_length=40, db_index=True)
    target = fields.CharField(max_length=80, null=True)
    request_id = fields.CharField(max_length=128, null=True)
    ip = fields.CharField(max_length=64, null=True)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "auth_audit_event"
