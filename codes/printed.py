"""Printed codes (离线码, code type 3, docs/code-format.md section 9): a long-lived card a
kiosk prints for a resident or a dependent, carrying no colour. Issuing, the current card,
revocation, online verification (current status, no replay rule) and its keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from tortoise.transactions import in_transaction

from app.context import AppContext
from auth.api import Principal, audit_kiosk_action, kiosk_info, subject_for_request
from codes import codec, verifier, verifying
from codes.config import PURPOSE, CodesRuntime
from codes.errors import KioskRequired, PrintedCodeNotFound
from codes.models import CodeRevocation, CodeSubject, PrintedCode
from codes.printed_keys import printed_keys, validity
from codes.states import Reason
from codes.status import current_status
from codes.subjects import actor_of, handle_for, profile_of


@dataclass(frozen=True)
class PrintedCard:
    """A subject's current card, with its code string (signed now by the active key: any
    signature over the same fields is the same card, same id, same revocation)."""

    code: str
    code_id: str
    subject_id: str
    masked_name: str
    issued_at: datetime
    expires_at: datetime
    issuing_point: str


def _sign(ctx: AppContext, row: PrintedCode) -> str:
    rt = ctx.runtime(CodesRuntime)
    key = ctx.keys.signing[PURPOSE].active()
    issued_s = int(row.issued_at.timestamp())
    payload = codec.Payload(
        codec.TYPE_PRINTED,
        rt.key_id(key),
        issued_s,
        int(row.expires_at.timestamp()) - issued_s,
        None,
        bytes.fromhex(row.id),
    )
    return codec.sign(payload, key.private_key)


async def _card(ctx: AppContext, row: PrintedCode) -> PrintedCard:
    profile = await profile_of(ctx, row.subject_id)
    return PrintedCard(
        _sign(ctx, row),
        row.id,
        row.subject_id,
        profile.masked_name if profile else "",
        row.issued_at,
        row.expires_at,
        row.issuing_point,
    )


async def issue_printed(
    ctx: AppContext, principal: Principal, dependent_id: str | None, *, request_id: str | None
) -> PrintedCard:
    """A new card for the resident at a kiosk (or a dependent they guard); their older
    cards are revoked. Only a kiosk prints: its location is the card's issuing point."""
    if principal.kiosk_id is None:
        raise KioskRequired()
    subject_id = await subject_for_request(principal, dependent_id)
    kiosk = await kiosk_info(principal.kiosk_id)
    if kiosk is None:
        raise KioskRequired()
    now = ctx.clock.now()
    issued_at = now.replace(microsecond=0)
    await handle_for(ctx, subject_id)  # the subject's codes row: issuing locks it
    async with in_transaction():
        # One issue at a time per subject, so exactly one card stays valid however many
        # kiosks print for the same person at once (SQLite serialises writers anyway).
        await CodeSubject.filter(subject_id=subject_id).select_for_update().first()
        older = await PrintedCode.filter(subject_id=subject_id, revoked_at=None)
        row = await PrintedCode.create(
            id=os.urandom(codec.TOKEN_BYTES).hex(),
            subject_id=subject_id,
            issued_at=issued_at,
            expires_at=issued_at + validity(ctx),
            issuing_point=kiosk.location,
            issued_by=principal.kiosk_id,
        )
        await _revoke(ctx, older, actor=actor_of(principal), now=now)
    await audit_kiosk_action(
        ctx, principal, "printed_code_issued", target=subject_id, request_id=request_id,
        detail={"code_id": row.id, "replaced": str(len(older))},
    )  # fmt: skip
    return await _card(ctx, row)


async def _revoke(ctx: AppContext, rows: list[PrintedCode], *, actor: str, now: datetime) -> int:
    """Revoke `rows` online (the row) and offline (a revocation entry gates sync)."""
    skew = ctx.runtime(CodesRuntime).config.skew
    done = 0
    for row in rows:
        moved = await PrintedCode.filter(id=row.id, revoked_at=None).update(
            revoked_at=now, revoked_by=actor[:64]
        )
        if moved:
            done += 1
            await CodeRevocation.create(
                subject_id=row.subject_id,
                code_id=row.id,
                revoked_at=now,
                not_after=row.expires_at + skew,
                actor=actor[:64],
            )
    return done


async def _current_row(ctx: AppContext, subject_id: str) -> PrintedCode:
    row = (
        await PrintedCode.filter(
            subject_id=subject_id, revoked_at=None, expires_at__gt=ctx.clock.now()
        )
        .order_by("-issued_at", "-id")
        .first()
    )
    if row is None:
        raise PrintedCodeNotFound()
    return row


async def current_card(
    ctx: AppContext, principal: Principal, dependent_id: str | None
) -> PrintedCard:
    """The resident's (or dependent's) valid card; 404 when there is none."""
    subject_id = await subject_for_request(principal, dependent_id)
    return await _card(ctx, await _current_row(ctx, subject_id))


async def revoke_printed(
    ctx: AppContext, principal: Principal, dependent_id: str | None, *, request_id: str | None
) -> PrintedCard:
    """A lost card: from the app or a kiosk, by the holder or a guardian. 404 when there is
    no valid card."""
    subject_id = await subject_for_request(principal, dependent_id)
    row = await _current_row(ctx, subject_id)
    card = await _card(ctx, row)
    await _revoke(ctx, [row], actor=actor_of(principal), now=ctx.clock.now())
    await audit_kiosk_action(
        ctx, principal, "printed_code_revoked", target=subject_id, request_id=request_id,
        detail={"code_id": row.id},
    )  # fmt: skip
    return card


# -- verification ----------------------------------------------------------------------------


async def _verified(ctx: AppContext, code: str, result: verifier.Result) -> verifier.Result:
    if result.reason is Reason.UNKNOWN_KEY:
        # Signed by a key retired longer ago than dynamic codes live: cards outlive it.
        rt = ctx.runtime(CodesRuntime)
        return verifier.verify(
            code, printed_keys(ctx), (), ctx.clock.now(), rt.config.skew, kind=codec.TYPE_PRINTED
        )
    return result


async def verify_printed(
    ctx: AppContext, code: str, result: verifier.Result
) -> verifying.Verification:
    """Online verdict on a printed code the pure verifier decoded: revoked cards refused,
    the holder's CURRENT status (the card has none), no replay rule (shown for months)."""
    result = await _verified(ctx, code, result)
    if not result.valid:
        return _verdict(result, result.reason)
    row = await PrintedCode.get_or_none(id=result.code_id)
    if row is None or row.revoked_at is not None:
        return _verdict(result, Reason.CODE_REVOKED)
    status = await current_status(ctx, row.subject_id)
    profile = await profile_of(ctx, row.subject_id)
    return verifying.Verification(
        True,
        Reason.OK,
        subject_id=row.subject_id,
        status=status,
        issued_status=None,
        masked_name=profile.masked_name if profile else None,
        age_group=profile.age_group if profile else None,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
        kind="printed",
    )


def _verdict(result: verifier.Result, reason: Reason) -> verifying.Verification:
    return verifying.Verification(
        False,
        reason,
        expires_at=result.expires_at,
        code_id=result.code_id,
        issued_at=result.issued_at,
        kind="printed",
    )


async def printed_holder(ctx: AppContext, code: str) -> str | None:
    """The subject of a printed code we signed, expiry and revocation not checked (for
    scans an offline gate syncs later): None for a forged code or an unknown card."""
    rt = ctx.runtime(CodesRuntime)
    result = verifier.verify(
        code, printed_keys(ctx), (), ctx.clock.now(), rt.config.skew, kind=codec.TYPE_PRINTED
    )
    if result.reason not in (Reason.OK, Reason.CODE_EXPIRED, Reason.CODE_NOT_YET_VALID):
        return None
    row = await PrintedCode.get_or_none(id=result.code_id)
    return row.subject_id if row is not None else None
