"""Online verification of identity codes: the pure verifier, then what only the server
knows (revocation since issue, the replay rule, the current status, the masked profile)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.context import AppContext
from codes import codec, printed, store, verifier
from codes.config import CodesRuntime
from codes.keys import trusted_keys
from codes.states import Reason, Status
from codes.status import status_in_force
from codes.store import Outcome
from codes.subjects import profile_of, subject_of
from codes.verifier import GATE_KINDS


@dataclass(frozen=True)
class Verification:
    """The online verdict. `status` is the subject's status now; `issued_status` the colour
    the code carries. Subject fields are set only for a valid code."""

    valid: bool
    reason: Reason
    subject_id: str | None = None
    status: Status | None = None
    issued_status: Status | None = None
    masked_name: str | None = None
    age_group: str | None = None
    expires_at: datetime | None = None
    code_id: str | None = None
    issued_at: datetime | None = None
    # "identity" (dynamic code) or "printed" (a card: no issued_status, no replay rule).
    kind: str = "identity"


def _refused(result: verifier.Result, reason: Reason | None = None) -> Verification:
    return Verification(
        False,
        reason or result.reason,
        issued_status=result.status,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
    )


async def verify_code(ctx: AppContext, code: str, *, verifier_id: str) -> Verification:
    """Pure verification, then what only the server knows: revocation since issue, the
    replay rule (atomic across processes), the current status and the masked profile."""
    rt = ctx.runtime(CodesRuntime)
    now = ctx.clock.now()
    result = verifier.verify(code, trusted_keys(ctx), (), now, rt.config.skew, kind=GATE_KINDS)
    if result.type == codec.TYPE_PRINTED:
        return await printed.verify_printed(ctx, code, result)
    if not result.valid:
        return _refused(result)
    subject_id = await subject_of(ctx, result)
    if subject_id is None:  # signed by us for a subject that no longer exists
        return _refused(result, Reason.CODE_REVOKED)
    assert result.code_id is not None and result.issued_at_s is not None
    until_s = result.issued_at_s + result.lifetime_s + rt.config.skew.total_seconds()
    outcome, cached = await store.present(
        ctx,
        subject_id,
        result.code_id,
        verifier_id=verifier_id,
        issued_at_s=result.issued_at_s,
        ttl_ms=max(1000, int((until_s - now.timestamp()) * 1000)),
    )
    if outcome == Outcome.REVOKED:
        return _refused(result, Reason.CODE_REVOKED)
    if outcome == Outcome.CONSUMED_BY_OTHER:
        return _refused(result, Reason.CODE_REPLAYED)
    status = await status_in_force(ctx, subject_id, cached)
    if status != result.status:
        # The colour on the holder's screen is no longer true (e.g. issued green a minute
        # before the authority set red): refuse, so the holder refreshes and shows the truth.
        return _verdict(result, Reason.STATUS_CHANGED, subject_id, status)
    return await _accepted(ctx, result, subject_id, status)


def _verdict(
    result: verifier.Result,
    reason: Reason,
    subject_id: str,
    status: Status,
    masked_name: str | None = None,
    age_group: str | None = None,
) -> Verification:
    return Verification(
        reason is Reason.OK,
        reason,
        subject_id=subject_id,
        status=status,
        issued_status=result.status,
        masked_name=masked_name,
        age_group=age_group,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
    )


async def _accepted(
    ctx: AppContext, result: verifier.Result, subject_id: str, status: Status
) -> Verification:
    profile = await profile_of(ctx, subject_id)
    if profile is None:
        return _verdict(result, Reason.OK, subject_id, status)
    return _verdict(result, Reason.OK, subject_id, status, profile.masked_name, profile.age_group)
