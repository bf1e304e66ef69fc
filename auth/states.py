"""The auth domain's state machines as types: each state enum, its allowed transitions in
one table, and its `app.states.Machine` (`CLIENT`, `REFRESH`, `CONSENT`), whose `can_move()`
a change of state asks first.

The states are not stored as strings: a row's state follows from its timestamps
(`disabled_at`, `used_at`, `revoked_at`), and the database update that moves a row is
conditional on the old state, so of two concurrent moves only one happens.

    ClientStatus    active -> disabled                  (rotation keeps a client active)
    RefreshState    active -> used | revoked,  used -> revoked
    ConsentState    open -> used                        (an open code past its expiry is dead)
    KioskSessionState  pending -> active | ended,  active -> ended   (past expiry: dead)
    OtpOutcome      what the OTP check script answers; the code's own lifecycle
                    (pending -> consumed | expired | burnt) runs inside the script
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import IntEnum, StrEnum

from app.states import Machine
from auth.models import Client, KioskSession, RefreshToken


class ClientStatus(StrEnum):
    """A machine client: active until disabled, for good. The value `disabled` is also
    the client's revocation mark in the key-value store."""

    ACTIVE = "active"
    DISABLED = "disabled"

    @classmethod
    def of(cls, client: Client) -> ClientStatus:
        return cls.ACTIVE if client.disabled_at is None else cls.DISABLED


class RefreshState(StrEnum):
    """A refresh token: used once (rotated into a new one of its family) or revoked with
    its family. Expiry is a matter of the clock, checked where the token is presented."""

    ACTIVE = "active"
    USED = "used"
    REVOKED = "revoked"

    @classmethod
    def of(cls, token: RefreshToken) -> RefreshState:
        if token.revoked_at is not None:
            return cls.REVOKED
        return cls.ACTIVE if token.used_at is None else cls.USED


class KioskSessionState(StrEnum):
    """A resident at a kiosk: pending until the OTP sent to their phone is confirmed, then
    active (a delegated token exists) until it ends or its expiry passes."""

    PENDING = "pending"
    ACTIVE = "active"
    ENDED = "ended"
    EXPIRED = "expired"

    @classmethod
    def of(cls, session: KioskSession, now: datetime) -> KioskSessionState:
        if session.ended_at is not None:
            return cls.ENDED
        if session.expires_at <= now:
            return cls.EXPIRED
        return cls.PENDING if session.confirmed_at is None else cls.ACTIVE


class ConsentState(StrEnum):
    """A consent code: open until a relative uses it. Expiry is a matter of the clock: an
    open code past `expires_at` is never used (`residents._use_consent` moves only open,
    unexpired codes, with an update conditional on both)."""

    OPEN = "open"
    USED = "used"


class OtpOutcome(IntEnum):
    """The result codes of the OTP check script (`store.OTP_CHECK`). Check and consume
    are one atomic step there, so of many concurrent logins with one code one is accepted."""

    ACCEPTED = 1
    NO_CODE = 0
    EXPIRED = -1
    BURNT = -2  # wrong, and that was the last try: the code is deleted
    WRONG = -3

    @property
    def reason(self) -> str:
        """How the audit trail names a refused check (`no_code`, `expired`, ...)."""
        return self.name.lower()


CLIENT_TRANSITIONS: Mapping[ClientStatus, frozenset[ClientStatus]] = {
    ClientStatus.ACTIVE: frozenset({ClientStatus.DISABLED}),
    ClientStatus.DISABLED: frozenset(),
}
REFRESH_TRANSITIONS: Mapping[RefreshState, frozenset[RefreshState]] = {
    RefreshState.ACTIVE: frozenset({RefreshState.USED, RefreshState.REVOKED}),
    RefreshState.USED: frozenset({RefreshState.REVOKED}),
    RefreshState.REVOKED: frozenset(),
}
CONSENT_TRANSITIONS: Mapping[ConsentState, frozenset[ConsentState]] = {
    ConsentState.OPEN: frozenset({ConsentState.USED}),
    ConsentState.USED: frozenset(),
}

CLIENT = Machine("client", ClientStatus, CLIENT_TRANSITIONS)
REFRESH = Machine("refresh token", RefreshState, REFRESH_TRANSITIONS)
CONSENT = Machine("consent code", ConsentState, CONSENT_TRANSITIONS)
