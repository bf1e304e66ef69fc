"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.types import ID_CHARS, Id

# What the service accepts, stated in /openapi.json so generated clients and fuzzers build
# only requests that pass. The service normalises more (spaces, dashes, a 0086 prefix).
PHONE_PATTERN = r"^(\+86)?1[3-9][0-9]{9}$"
ID_NUMBER_PATTERN = (
    r"^(1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])[0-9]{4}"  # province, area
    r"(19[0-9]{2}|20[01][0-9]|202[0-5])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])"  # birth date
    r"[0-9]{3}[0-9X]$"  # sequence, check digit
)

SUBJECT_ID_MAX = 32  # auth_subject.id
SubjectId = Annotated[
    str, StringConstraints(min_length=1, max_length=SUBJECT_ID_MAX, pattern=ID_CHARS)
]
Phone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="A mainland mobile number, 13812345678 or +8613812345678",
        json_schema_extra={"pattern": PHONE_PATTERN},
    ),
]
IdNumber = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="18-character PRC resident ID: region, birth date, sequence, and the "
        "ISO 7064 MOD 11-2 check digit (refused with id_number_invalid when it is wrong)",
        json_schema_extra={"pattern": ID_NUMBER_PATTERN},
    ),
]
PersonName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        # No `pattern`: the rule needs CJK character classes, on which schemathesis (the
        # fuzzer CI runs) fails; the description states it and name_invalid enforces it.
        description="2-30 characters after trimming: Chinese characters (U+3400-U+4DBF, "
        "U+4E00-U+9FFF, U+F900-U+FAFF) with · between name parts, or Latin letters with "
        "single spaces, apostrophes, hyphens or dots between them; else 422 name_invalid",
    ),
]

Relation = Literal["child", "parent", "spouse", "other"]
ClientKind = Literal["gate", "hospital", "authority", "operator", "admin", "kiosk"]
Location = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="Where a kiosk stands, printed on the cards and slips it issues "
        "(e.g. 闵行区江川路街道社区事务受理中心 24小时自助服务点)",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtpRequest(_Body):
    phone: Phone


class OtpSent(BaseModel):
    sent: bool = True
    expires_in: int
    resend_after: int
    debug_code: str | None = Field(
        default=None, description="Only outside production: the code that was sent"
    )


class LoginRequest(_Body):
    phone: Phone
    otp: str = Field(min_length=1, max_length=16, json_schema_extra={"pattern": "^[0-9]{6}$"})


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
    client_id: Id
    client_secret: str = Field(min_length=1, max_length=256)


class ClientToken(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    scope: str


class ClientCreate(_Body):
    kind: ClientKind
    tenant_id: Id | None = None
    location: Location | None = Field(
        default=None, description="Required for a kiosk (location_required), else refused"
    )


class ClientCredentialsOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown only in this response; stored hashed")
    scope: str
    kind: str
    tenant_id: str | None
    location: str | None = None


class ClientOut(BaseModel):
    client_id: str
    kind: str
    tenant_id: str | None
    scope: str
    disabled: bool
    location: str | None = None


class KioskIdentifyRequest(_Body):
    """The name and ID number as the ID card reader gives them."""

    name: PersonName
    id_number: IdNumber


class KioskChallengeOut(BaseModel):
    session_id: str
    otp_sent_to: str = Field(description="The account's masked phone, 138****5678")
    expires_at: datetime = Field(description="The OTP must be confirmed before this")
    debug_code: str | None = Field(
        default=None, description="Only outside production: the code that was sent"
    )


class KioskConfirmRequest(_Body):
    otp: str = Field(min_length=1, max_length=16, json_schema_extra={"pattern": "^[0-9]{6}$"})


class KioskTokenOut(BaseModel):
    session_id: str
    access_token: str = Field(
        description="Acts for the identified resident only (a resident token carrying the "
        "kiosk's id); not refreshable; dies when the session ends or expires"
    )
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    expires_at: datetime
    subject_id: str
    masked_name: str


class KioskSessionEnded(BaseModel):
    ended: bool = True


class IdentityRequest(_Body):
    name: PersonName
    id_number: IdNumber


class DependentRequest(_Body):
    name: PersonName
    id_number: IdNumber
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
