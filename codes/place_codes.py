"""Place codes (场所码): a venue's static, signed poster code that residents scan to check in."""

from __future__ import annotations

from app.context import AppContext
from codes import codec, verifier
from codes.config import PURPOSE, CodesRuntime
from codes.errors import PlaceCodeInvalid
from codes.keys import place_keys


def sign_place_code(ctx: AppContext, venue_id: str) -> str:
    """A venue's static place code (type 2, no expiry), signed with the active codes key."""
    key = ctx.keys.signing[PURPOSE].active()
    payload = codec.Payload(
        codec.TYPE_PLACE,
        ctx.runtime(CodesRuntime).key_id(key),
        int(ctx.clock.now().timestamp()),
        0,
        venue_id=venue_id,
    )
    try:
        return codec.sign(payload, key.private_key)
    except ValueError as exc:
        raise PlaceCodeInvalid(f"cannot make a place code: {exc}") from None


def verify_place_code(ctx: AppContext, code: str) -> str:
    """The venue id a place code names; PlaceCodeInvalid when it does not verify."""
    result = verifier.verify(
        code,
        place_keys(ctx),
        (),
        ctx.clock.now(),
        ctx.runtime(CodesRuntime).config.skew,
        kind=codec.TYPE_PLACE,
    )
    if not result.valid or result.venue_id is None:
        raise PlaceCodeInvalid(extra={"reason": result.reason})
    return result.venue_id
