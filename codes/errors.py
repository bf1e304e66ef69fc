"""Problem codes of the codes domain (besides the ones it passes through from app and auth).

Problem (app.errors)
 ├── Unauthorized          401 unauthorized        no or bad bearer token (auth.authz)
 ├── Forbidden             403 forbidden           wrong scope (auth.authz)
 ├── IdentityRequired      409 identity_required   GET /v1/codes/me before identity (auth)
 ├── NotFound              404 not_found           not a dependent of the caller (auth)
 ├── ValidationFailed      422 validation_failed   bad body, query, status or valid_until
 ├── SubjectRequired       422 subject_required    an admin's revoke without `subject_id`
 ├── PlaceCodeInvalid      422 place_code_invalid  a place code that does not verify
 ├── KioskRequired         403 kiosk_required      a printed code is issued at a kiosk only
 └── PrintedCodeNotFound   404 not_found           no valid printed code for this subject

A code that does not verify is not an error: POST /v1/codes/verify answers 200 with
`valid: false` and one `reason` of codes.states.Reason.
"""

from __future__ import annotations

from app.errors import NotFound, Problem


class SubjectRequired(Problem):
    """An admin revoking codes must name the subject whose codes stop verifying."""

    status, code, title = 422, "subject_required", "Name the subject_id whose codes to revoke"


class PlaceCodeInvalid(Problem):
    """A place code that is malformed, not signed by a codes key, or not a place code."""

    status, code, title = 422, "place_code_invalid", "Not a valid place code"


class KioskRequired(Problem):
    """Printed codes are issued at a kiosk (its location is the card's issuing point): the
    token must be one a kiosk holds for the resident."""

    status, code, title = 403, "kiosk_required", "Printed codes are issued at a kiosk"


class PrintedCodeNotFound(NotFound):
    """The subject has no valid printed code (none issued, revoked or expired)."""

    title = "No valid printed code"
