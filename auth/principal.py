"""Who is calling: the authenticated principal every authorised route receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    """Who a token speaks for: a resident's account or one kind of machine client."""

    RESIDENT = "resident"
    GATE = "gate"
    HOSPITAL = "hospital"
    AUTHORITY = "authority"
    OPERATOR = "operator"
    ADMIN = "admin"
    KIOSK = "kiosk"


@dataclass(frozen=True)
class Principal:
    """A resident account or a machine client, as proven by a verified access token.

    `id` is the account id (residents) or client id (machines); `tenant_id` is the venue
    id of a gate/operator and the hospital id of a hospital, else None; `subject_id` is a
    resident's own opaque subject id once identity is bound (None before and for machines).
    """

    kind: PrincipalKind
    id: str
    scopes: frozenset[str]
    tenant_id: str | None = None
    subject_id: str | None = None
    token_id: str | None = None
    # The refresh-token family a resident's access token descends from (for logout); for
    # a token a kiosk holds for a resident, the kiosk session.
    family_id: str | None = None
    # Set on a resident principal acting through a kiosk (the `act` claim): the kiosk's
    # client id. Such a token is short-lived, not refreshable, and dies with its session.
    kiosk_id: str | None = None

    @property
    def is_resident(self) -> bool:
        return self.kind == PrincipalKind.RESIDENT

    def has(self, scope: str) -> bool:
        return scope in self.scopes
