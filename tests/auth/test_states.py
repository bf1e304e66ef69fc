"""The auth state machines: a disabled client stays disabled, a refresh token is used once
and then only revoked, a consent code is used once."""

from __future__ import annotations

import pytest

from app.states import IllegalTransition
from auth.states import CLIENT, CONSENT, REFRESH, ClientStatus, ConsentState, RefreshState


def test_a_disabled_client_stays_disabled() -> None:
    assert CLIENT.can_move(ClientStatus.ACTIVE, ClientStatus.DISABLED)
    assert CLIENT.terminal == {ClientStatus.DISABLED}
    with pytest.raises(IllegalTransition):
        CLIENT.advance(ClientStatus.DISABLED, ClientStatus.ACTIVE)


def test_a_refresh_token_is_used_once_then_only_revoked() -> None:
    active, used, revoked = RefreshState.ACTIVE, RefreshState.USED, RefreshState.REVOKED
    assert REFRESH.can_move(active, used) and REFRESH.can_move(active, revoked)
    assert REFRESH.can_move(used, revoked)
    assert not REFRESH.can_move(used, used) and not REFRESH.can_move(used, active)
    assert REFRESH.terminal == {revoked}


def test_a_consent_code_is_used_once() -> None:
    assert CONSENT.advance(ConsentState.OPEN, ConsentState.USED) is ConsentState.USED
    assert not CONSENT.can_move(ConsentState.USED, ConsentState.USED)
    assert CONSENT.terminal == {ConsentState.USED}
