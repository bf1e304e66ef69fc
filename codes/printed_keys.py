"""How long printed codes live, and the keys they verify with: a card outlives key
rotations, so a retired key keeps verifying cards for the longest card life (+ skew)."""

from __future__ import annotations

from datetime import timedelta

from app.context import AppContext
from app.settings import int_knob
from codes import codec, verifier
from codes.config import PURPOSE, CodesRuntime

DEFAULT_VALIDITY_DAYS = 180
# The lifetime field counts hours in 16 bits: 65535 hours is 2730 whole days.
MAX_VALIDITY_DAYS = codec.MAX_PRINTED_LIFETIME_S // 86400


def validity(ctx: AppContext) -> timedelta:
    """How long a new card is valid (SUISHEN_CODES_PRINTED_VALIDITY_DAYS, default 180)."""
    days = int_knob(
        ctx.settings.extra,
        "SUISHEN_CODES_PRINTED_VALIDITY_DAYS",
        DEFAULT_VALIDITY_DAYS,
        low=1,
        high=MAX_VALIDITY_DAYS,
    )
    return timedelta(days=days)


def printed_keys(ctx: AppContext) -> dict[bytes, verifier.TrustedKey]:
    """The keys printed codes verify with: active ones and keys retired less than the
    longest card life (+ skew) ago, with both windows (`exp` and `printed_exp`)."""
    rt = ctx.runtime(CodesRuntime)
    window = rt.config.verification_window
    printed_window = validity(ctx) + rt.config.skew
    keys = ctx.keys.signing[PURPOSE].verification_keys(max(window, printed_window))
    return verifier.key_set(
        verifier.TrustedKey(
            k.kid,
            k.public_key,
            k.retired_at + window if k.retired_at else None,
            rt.key_id(k),
            k.retired_at + printed_window if k.retired_at else None,
        )
        for k in keys.values()
    )
