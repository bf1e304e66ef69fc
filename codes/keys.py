"""The keys codes are verified with: the trusted key sets (identity codes within the
verification window, place codes forever), the public JWK Set, and the day keys and daily
pseudonyms an offline gate's bundle carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.context import AppContext
from codes import verifier
from codes.config import PURPOSE, CodesRuntime
from codes.printed_keys import printed_keys
from codes.subjects import day_keys, pseudonym_of


def trusted_keys(ctx: AppContext) -> dict[bytes, verifier.TrustedKey]:
    """The keys identity codes verify with: active ones and retired ones inside the
    verification window (lifetime + skew), loaded once and kept until the keyring changes."""
    rt = ctx.runtime(CodesRuntime)
    window = rt.config.verification_window
    keys = ctx.keys.signing[PURPOSE].verification_keys(window)
    signature = tuple((k.kid, k.retired_at) for k in keys.values())
    if signature != rt.trusted_sig:
        rt.trusted = verifier.key_set(
            verifier.TrustedKey(
                k.kid,
                k.public_key,
                k.retired_at + window if k.retired_at else None,
                rt.key_id(k),
            )
            for k in keys.values()
        )
        rt.trusted_sig = signature
    return rt.trusted


def place_keys(ctx: AppContext) -> dict[bytes, verifier.TrustedKey]:
    """The keys place codes verify with."""
    # Place codes are printed posters: every codes key ever made verifies them, so a
    # rotation never invalidates a poster (a compromised key is removed from the ring).
    rt = ctx.runtime(CodesRuntime)
    keys = ctx.keys.signing[PURPOSE].all_keys()
    signature = tuple(k.kid for k in keys)
    if signature != rt.all_sig:
        rt.all_keys = verifier.key_set(
            verifier.TrustedKey(k.kid, k.public_key, None, rt.key_id(k)) for k in keys
        )
        rt.all_sig = signature
    return rt.all_keys


def public_keys(ctx: AppContext) -> dict[str, Any]:
    """The JWK Set of GET /v1/codes/keys (and of offline bundles): a retired key is listed
    with `exp` and, as long as it still verifies printed codes, `printed_exp`."""
    return {
        "keys": [
            verifier.public_jwk(
                k.kid, k.public_key, not_after=k.not_after, printed_not_after=k.printed_not_after
            )
            for k in printed_keys(ctx).values()
        ]
    }


def gate_token_keys(ctx: AppContext, days: Sequence[int]) -> dict[int, str]:
    """Hex gate keys of `days` (pseudonym.day_of numbers) for an offline bundle: they open
    the tokens of codes issued on those days to the holders' daily pseudonyms."""
    secret = ctx.runtime(CodesRuntime).token_secret
    return {day: day_keys(secret, day)[0].hex() for day in days}


async def daily_pseudonym(ctx: AppContext, subject_id: str, day: int) -> str:
    """The subject's pseudonym of `day` (hex), what an offline gate reads out of a code
    with that day's gate key: venues list reservations by it in their bundles."""
    return (await pseudonym_of(ctx, subject_id, day)).hex()
