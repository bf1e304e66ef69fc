"""Scope names and what each kind of machine client may do by default."""

from __future__ import annotations

RESIDENT = "resident"
CODES_VERIFY = "codes:verify"
GATES_SCAN = "gates:scan"
ENCOUNTERS_WRITE = "encounters:write"
STATUS_WRITE = "status:write"
VENUES_MANAGE = "venues:manage"
ADMIN = "admin"

ALL = frozenset(
    {RESIDENT, CODES_VERIFY, GATES_SCAN, ENCOUNTERS_WRITE, STATUS_WRITE, VENUES_MANAGE, ADMIN}
)

CLIENT_KINDS = ("gate", "hospital", "authority", "operator", "admin")
# Kinds bound to one tenant: a venue for gates and operators, a hospital for hospitals.
TENANT_KINDS = frozenset({"gate", "operator", "hospital"})

KIND_SCOPES: dict[str, frozenset[str]] = {
    "gate": frozenset({GATES_SCAN, CODES_VERIFY}),
    "hospital": frozenset({ENCOUNTERS_WRITE, CODES_VERIFY}),
    "authority": frozenset({STATUS_WRITE, CODES_VERIFY}),
    "operator": frozenset({VENUES_MANAGE}),
    "admin": frozenset({ADMIN}),
}

RESIDENT_SCOPES = frozenset({RESIDENT})


def render(scopes: frozenset[str]) -> str:
    """The space-separated form used in tokens and responses (OAuth 2.0 style), sorted."""
    return " ".join(sorted(scopes))


def parse(value: str) -> frozenset[str]:
    return frozenset(s for s in value.split(" ") if s)
