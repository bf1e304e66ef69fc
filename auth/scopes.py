"""Scope names and what each kind of machine client may do by default."""

from __future__ import annotations

from auth.principal import PrincipalKind as K

RESIDENT = "resident"
CODES_VERIFY = "codes:verify"
GATES_SCAN = "gates:scan"
ENCOUNTERS_WRITE = "encounters:write"
STATUS_WRITE = "status:write"
VENUES_MANAGE = "venues:manage"
ADMIN = "admin"
# A kiosk identifies residents and holds a short-lived token acting for each one.
KIOSK_SESSIONS = "kiosk:sessions"

ALL = frozenset(
    {
        RESIDENT,
        CODES_VERIFY,
        GATES_SCAN,
        ENCOUNTERS_WRITE,
        STATUS_WRITE,
        VENUES_MANAGE,
        ADMIN,
        KIOSK_SESSIONS,
    }
)

# Every principal kind but `resident` is a kind of machine client.
CLIENT_KINDS = (K.GATE, K.HOSPITAL, K.AUTHORITY, K.OPERATOR, K.ADMIN, K.KIOSK)
# Kinds that stand somewhere and say where (a kiosk's location is printed on its cards).
LOCATED_KINDS = frozenset({K.KIOSK})
# Kinds bound to one tenant: a venue for gates and operators, a hospital for hospitals.
TENANT_KINDS = frozenset({K.GATE, K.OPERATOR, K.HOSPITAL})

KIND_SCOPES: dict[K, frozenset[str]] = {
    K.GATE: frozenset({GATES_SCAN, CODES_VERIFY}),
    K.HOSPITAL: frozenset({ENCOUNTERS_WRITE, CODES_VERIFY}),
    K.AUTHORITY: frozenset({STATUS_WRITE, CODES_VERIFY}),
    K.OPERATOR: frozenset({VENUES_MANAGE}),
    K.ADMIN: frozenset({ADMIN}),
    K.KIOSK: frozenset({KIOSK_SESSIONS}),
}

RESIDENT_SCOPES = frozenset({RESIDENT})


def render(scopes: frozenset[str]) -> str:
    """The space-separated form used in tokens and responses (OAuth 2.0 style), sorted."""
    return " ".join(sorted(scopes))


def parse(value: str) -> frozenset[str]:
    return frozenset(s for s in value.split(" ") if s)
