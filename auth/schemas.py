"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Relation = Literal["child", "parent", "spouse", "other"]
ClientKind = Literal["gate", "hospital", "authority", "operator", "admin"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpRequest(_Body):
    phone: str = Field(min_length=1, max_length=32)


class OtpSent(BaseModel):
    sent: bool = True
    expires_in: int
    resend_after: int
    debug_code: str | None = Field(
        default=None, description="Only outside production: the code that was sent"
    )


class LoginRequest(_Body):
    phone: str = Field(min_length=1, max_length=32)
    otp: str = Field(min_length=1, max_length=16)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_expires_in: int


class RefreshRequest(_Body):
    refresh_token: str = Field(min_length=1, max_length=256)


class LoggedOut(BaseModel):
    revoked: bool = True


class ClientTokenRequest(_Body):
    grant_type: str = Field(min_length=1, max_length=64)
    client_id: str = Field(min_length=1, max_length=64)
    client_secret: str = Field(min_length=1, max_length=256)


class ClientToken(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    scope: str


class ClientCreate(_Body):
    kind: ClientKind
    tenant_id: str | None = Field(default=None, min_length=1, max_length=64)


class ClientCredentialsOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown only in this response; stored hashed")
    scope: str
    kind: str
    tenant_id: str | None


class ClientOut(BaseModel):
    client_id: str
    kind: str
    tenant_id: str | None
    scope: str
    disabled: bool


class IdentityRequest(_Body):
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)


class DependentRequest(_Body):
    name: str = Field(min_length=1, max_length=64)
    id_number: str = Field(min_length=1, max_length=32)
    relation: Relation
    consent_code: str | None = Field(
        default=None,
        max_length=32,
        description="Needed when the ID number is someone's own account (they give it)",
    )


class DependentOut(BaseModel):
    dependent_id: str = Field(description="The dependent's subject id (use as ?dependent_id=)")
    subject_id: str
    masked_name: str
    masked_id_number: str
    relation: Relation
    birth_year: int
    age_group: str


class DependentList(BaseModel):
    dependents: list[DependentOut]


class ResidentProfile(BaseModel):
    account_id: str
    phone: str = Field(description="Masked mobile number, 138****5678")
    identity_bound: bool
    subject_id: str | None
    masked_name: str | None
    masked_id_number: str | None
    birth_year: int | None
    age_group: str | None
    dependents: list[DependentOut]


class ConsentOut(BaseModel):
    consent_code: str = Field(description="Give it to the relative who adds you; single use")
    expires_at: datetime
