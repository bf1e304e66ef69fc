"""Request and response shapes of the codes endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.types import Cursor, Instant, LongId
from auth.api import SubjectId

Status = Literal["green", "yellow", "red"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeQuery(_In):
    dependent_id: SubjectId | None = None
    format: Literal["json", "png", "svg"] | None = None


class IssuedCodeOut(BaseModel):
    code: str = Field(description="The QR payload: SC1: + Base45 (docs/code-format.md)")
    status: Status = Field(description="The status colour the code carries")
    issued_at: datetime
    expires_at: datetime
    refresh_after: int = Field(description="Seconds after which the app fetches a new code")
    refresh_at: datetime


class JwkOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: Literal["EC"]
    crv: Literal["P-256"]
    alg: Literal["ES256"]
    use: Literal["sig"]
    kid: str
    x: str
    y: str
    code_kid: str = Field(description="Hex of the 4-byte key id codes carry")
    exp: int | None = Field(
        default=None, description="Retired key: unix time its verification window ends"
    )
    printed_exp: int | None = Field(
        default=None,
        description="Retired key: unix time it stops verifying printed codes (type 3), "
        "which live for months; replaces `exp` for them (docs/code-format.md)",
    )


class JwksOut(BaseModel):
    keys: list[JwkOut]


class VerifyIn(_In):
    code: str = Field(max_length=1024)


class SubjectOut(BaseModel):
    masked_name: str | None
    status: Status = Field(description="The subject's current status (not the one at issue)")
    age_group: str | None


class VerifyOut(BaseModel):
    valid: bool
    reason: str = Field(
        description="ok, code_malformed, signature_invalid, unknown_key, code_expired, "
        "code_not_yet_valid, code_revoked, code_replayed, or status_changed (online only: the "
        "subject's status changed after the code was issued; the holder must refresh)"
    )
    subject: SubjectOut | None
    expires_at: datetime | None
    issued_at: datetime | None
    issued_status: Status | None = Field(
        description="The colour the code carries (null for a printed code: it carries none)"
    )
    code_id: str | None
    kind: Literal["identity", "printed"] = Field(
        default="identity",
        description="identity: a dynamic code; printed: a printed card (离线码), judged on "
        "the subject's current status and never consumed by the replay rule",
    )


class RevokeIn(_In):
    # One way to name the subject: both at once is refused, and the schema says so.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"not": {"required": ["dependent_id", "subject_id"]}}
    )

    dependent_id: SubjectId | None = None
    subject_id: SubjectId | None = Field(
        default=None,
        description="An admin names any subject; a resident themselves or a dependent "
        "(or uses dependent_id; not both)",
    )

    @model_validator(mode="after")
    def _one_name(self) -> RevokeIn:
        if self.dependent_id is not None and self.subject_id is not None:
            raise ValueError("name the subject with dependent_id or subject_id, not both")
        return self


class RevokeOut(BaseModel):
    revoked_at: datetime
    codes_revoked: int = Field(description="Codes issued so far that were still live")


class RevocationsQuery(_In):
    since: Cursor = Field(default=0, description="The `next_cursor` of the last page")
    limit: int = Field(default=1000, ge=1, le=5000)


class RevokedCodeOut(BaseModel):
    cursor: int
    code_id: str
    not_after: datetime = Field(description="After this the code has expired anyway")


class RevocationsOut(BaseModel):
    since: int
    next_cursor: int
    has_more: bool
    generated_at: datetime
    entries: list[RevokedCodeOut]
    jws: str = Field(
        description="ES256 compact JWS (codes key, `kid` in its header) over this object "
        "without `jws`; an offline gate trusts only the JWS payload"
    )


class StatusIn(_In):
    status: Status
    reason: str = Field(min_length=1, max_length=500)
    valid_until: Instant | None = Field(
        default=None, description="Must be after now (else validation_failed, type in_the_past)"
    )


class StatusEntryIn(StatusIn):
    subject_id: LongId


class StatusBatchIn(_In):
    entries: list[StatusEntryIn] = Field(
        min_length=1,
        max_length=10_000,
        description="At most one entry per subject (else validation_failed, type duplicate)",
    )


class StatusOut(BaseModel):
    subject_id: str
    status: Status = Field(description="The status in force now")
    set_status: Status | None = Field(description="The status last set (before any revert)")
    reason: str | None
    valid_until: datetime | None
    set_at: datetime | None


class StatusBatchOut(BaseModel):
    updated: int


class StatusChangeOut(BaseModel):
    status: Status
    reason: str
    valid_until: datetime | None
    set_by: str
    set_at: datetime


class StatusHistoryOut(BaseModel):
    subject_id: str
    changes: list[StatusChangeOut]


class PrintedIn(_In):
    dependent_id: SubjectId | None = Field(
        default=None, description="A dependent the resident guards; the resident when absent"
    )


class PrintedQuery(_In):
    dependent_id: SubjectId | None = None


class PrintedCodeOut(BaseModel):
    code: str = Field(
        description="The QR payload: a printed code (type 3, docs/code-format.md section 9)"
    )
    code_id: str
    kind: Literal["printed"] = "printed"
    subject_id: str
    masked_name: str
    issued_at: datetime
    expires_at: datetime
    issuing_point: str = Field(description="Where it was issued (the kiosk's location)")


class PrintedRevokedOut(BaseModel):
    code_id: str
    revoked: bool = True
