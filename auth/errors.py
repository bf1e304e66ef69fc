"""Problem codes of the auth domain.

Problem (app.errors)
 ├── Unauthorized            401 unauthorized         bad, expired or revoked bearer token
 ├── Forbidden               403 forbidden            wrong scope or other tenant
 ├── RateLimited             429 rate_limited         OTP sends, failed client logins
 ├── PhoneInvalid            422 phone_invalid        not a mainland mobile number
 ├── OtpInvalid              401 otp_invalid          wrong, expired, used or burnt OTP
 ├── RefreshInvalid          401 refresh_invalid      unknown or expired refresh token
 ├── RefreshReused           401 refresh_reused       dead refresh token presented; family revoked
 ├── InvalidClient           401 invalid_client       unknown/disabled client or wrong secret
 ├── UnsupportedGrant        400 unsupported_grant_type
 ├── TenantRequired          422 tenant_required      gate/operator/hospital client without tenant
 ├── TenantNotAllowed        422 tenant_not_allowed   authority/admin client with a tenant
 ├── NameInvalid             422 name_invalid         not a plausible real name
 ├── IdNumberInvalid         422 id_number_invalid    region, birth date or check digit wrong
 ├── IdentityTaken           409 identity_taken       ID number is another account's identity
 ├── IdentityAlreadyBound    409 identity_already_bound  the account already has another identity
 ├── IdentityRequired        409 identity_required    the action needs a bound identity
 ├── IdentityMismatch        409 identity_mismatch    name does not match the known holder of the ID
 ├── DependentsLimit         409 dependents_limit     already 5 dependents
 ├── DependentIsSelf         422 dependent_is_self    own ID number given as a dependent
 ├── AlreadyDependent        409 already_dependent    this person is already your dependent
 ├── ConsentRequired         409 consent_required     the ID is someone's own account (no consent)
 ├── ConsentInvalid          409 consent_invalid      wrong, expired or someone else's code
 ├── ClientNotFound          404 not_found            no such machine client
 ├── DependentNotFound       404 not_found            not a dependent of this resident
 ├── ClientDisabled          409 client_disabled      a disabled client cannot be rotated
 ├── LocationRequired        422 location_required    kiosk client without its location
 ├── LocationNotAllowed      422 location_not_allowed a location on a kind that has none
 ├── IdentificationFailed    401 identification_failed  name and ID number open no account here
 ├── KioskSessionNotFound    404 not_found            no such pending/active session of this kiosk
 └── Conflict                409 conflict             a concurrent rotation of the same client won
"""

from __future__ import annotations

from app.errors import Conflict, Forbidden, NotFound, Problem, RateLimited, Unauthorized

__all__ = [
    "AlreadyDependent",
    "ClientDisabled",
    "ClientNotFound",
    "Conflict",
    "ConsentInvalid",
    "ConsentRequired",
    "DependentIsSelf",
    "DependentNotFound",
    "DependentsLimit",
    "Forbidden",
    "IdNumberInvalid",
    "IdentificationFailed",
    "IdentityAlreadyBound",
    "IdentityMismatch",
    "IdentityRequired",
    "IdentityTaken",
    "InvalidClient",
    "KioskSessionNotFound",
    "LocationNotAllowed",
    "LocationRequired",
    "NameInvalid",
    "OtpInvalid",
    "PhoneInvalid",
    "RateLimited",
    "RefreshInvalid",
    "RefreshReused",
    "TenantNotAllowed",
    "TenantRequired",
    "Unauthorized",
    "UnsupportedGrant",
]


class PhoneInvalid(Problem):
    """The phone is not a mainland China mobile number (+86, 11 digits starting 13-19)."""

    status, code, title = 422, "phone_invalid", "Not a mainland China mobile number"


class OtpInvalid(Problem):
    """The one-time code is wrong, expired, already used or burnt by 5 wrong tries."""

    status, code, title = 401, "otp_invalid", "The one-time code is not valid"


class RefreshInvalid(Problem):
    """The refresh token is unknown or expired."""

    status, code, title = 401, "refresh_invalid", "The refresh token is not valid"


class RefreshReused(Problem):
    """A refresh token that was already used (or revoked) came back: its family is revoked."""

    status, code, title = 401, "refresh_reused", "Refresh token reused; please log in again"


class InvalidClient(Problem):
    """Client authentication failed: unknown or disabled client, or wrong secret."""

    status, code, title = 401, "invalid_client", "Client authentication failed"


class UnsupportedGrant(Problem):
    """Only the client_credentials grant is offered on /v1/auth/token."""

    status, code, title = 400, "unsupported_grant_type", "Unsupported grant type"


class TenantRequired(Problem):
    """Gate, operator and hospital clients belong to one venue or hospital."""

    status, code, title = 422, "tenant_required", "This kind of client needs a tenant_id"


class TenantNotAllowed(Problem):
    """Authority and admin clients are platform-wide and take no tenant."""

    status, code, title = 422, "tenant_not_allowed", "This kind of client takes no tenant_id"


class NameInvalid(Problem):
    """Names are 2-30 characters: CJK, the middle dot, or Latin letters for foreigners."""

    status, code, title = 422, "name_invalid", "Not a valid name"


class IdNumberInvalid(Problem):
    """The 18-character resident ID fails the region, birth-date or check-digit test."""

    status, code, title = 422, "id_number_invalid", "Not a valid resident ID number"


class IdentityTaken(Problem):
    """The ID number is already the identity of another account."""

    status, code, title = 409, "identity_taken", "This ID number belongs to another account"


class IdentityAlreadyBound(Problem):
    """The account is already bound to a different identity; identities do not change."""

    status, code, title = 409, "identity_already_bound", "This account already has an identity"


class IdentityRequired(Problem):
    """The action needs a real-name identity on the account first."""

    status, code, title = 409, "identity_required", "Bind your real-name identity first"


class IdentityMismatch(Problem):
    """The name given does not match the holder of this ID number that we already know."""

    status, code, title = 409, "identity_mismatch", "Name and ID number do not match"


class DependentsLimit(Problem):
    """A resident guards at most 5 dependents."""

    status, code, title = 409, "dependents_limit", "At most 5 dependents"


class DependentIsSelf(Problem):
    """The ID number given for a dependent is the resident's own."""

    status, code, title = 422, "dependent_is_self", "You cannot be your own dependent"


class AlreadyDependent(Problem):
    """The person is already one of the resident's dependents."""

    status, code, title = 409, "already_dependent", "Already your dependent"


class ConsentRequired(Problem):
    """The ID number is someone's own account: they must give a consent code first."""

    status, code, title = 409, "consent_required", "The holder of this ID must consent"


class ConsentInvalid(Problem):
    """The consent code is wrong, expired, used, or was given by someone else."""

    status, code, title = 409, "consent_invalid", "The consent code is not valid"


class ClientNotFound(NotFound):
    """No machine client with this id."""

    title = "No such client"


class DependentNotFound(NotFound):
    """No such dependent among the resident's own (existence of others' is not revealed)."""

    title = "No such dependent"


class ClientDisabled(Problem):
    """A disabled client stays disabled: create a new one instead of rotating it."""

    status, code, title = 409, "client_disabled", "The client is disabled"


class LocationRequired(Problem):
    """A kiosk says where it stands: its location is printed on the cards it issues."""

    status, code, title = 422, "location_required", "A kiosk client needs its location"


class LocationNotAllowed(Problem):
    """Only kiosks have a location."""

    status, code, title = 422, "location_not_allowed", "This kind of client has no location"


class IdentificationFailed(Problem):
    """The name and ID number read at a kiosk do not open an account here. The same answer
    for an unknown number, a wrong name and a person without an account of their own, so
    a kiosk learns nothing about who exists."""

    status, code, title = 401, "identification_failed", "Identification failed"


class KioskSessionNotFound(NotFound):
    """No pending (or active) session of this kiosk with this id: unknown, another kiosk's,
    ended or expired."""

    title = "No such kiosk session"
