"""Who holds a code, whatever its age: the way back from a correctly signed identity code to
its subject, for scans recorded earlier and uploaded later (an offline gate's sync)."""

from __future__ import annotations

from app.context import AppContext
from codes import codec, printed, verifier
from codes.config import CodesRuntime
from codes.keys import trusted_keys
from codes.states import Reason
from codes.subjects import subject_of

# A correct signature by a trusted key: the code is ours, whatever the time says.
_SIGNED = frozenset({Reason.OK, Reason.CODE_EXPIRED, Reason.CODE_NOT_YET_VALID})


async def holder_of(ctx: AppContext, code: str) -> str | None:
    """The subject id of an identity code we issued: signed by one of our trusted keys (a
    retired key only inside its verification window). Expiry is not checked (a synced scan
    may be hours old), nor revocation. None for a malformed, forged or place code, or a
    subject that no longer exists. One signature check; the subject comes from the codes
    runtime's caches (a query only the first time this process meets the subject)."""
    rt = ctx.runtime(CodesRuntime)
    result = verifier.verify(
        code, trusted_keys(ctx), (), ctx.clock.now(), rt.config.skew, kind=verifier.GATE_KINDS
    )
    if result.type == codec.TYPE_PRINTED:
        return await printed.printed_holder(ctx, code)
    if result.reason not in _SIGNED:
        return None
    return await subject_of(ctx, result)
