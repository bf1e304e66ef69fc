"""Encounters and charges: opening a visit on credit (an authorization hold), reading it,
posting itemised charges that extend the hold while credit remains.

Locks are taken account -> encounter -> charge, the order every payments module keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.db import sql_for
from app.errors import IdempotencyKeyReused, NotFound
from app.idempotency import canonical_hash
from auth.api import Principal, subject_profile
from codes.api import verify_code
from payments.bureau import BureauError, BureauRefused, EcToken
from payments.config import PaymentsRuntime
from payments.credit import available_fen, credit_use
from payments.errors import (
    AmountImplausible,
    BureauUnavailable,
    CodeRejected,
    CreditLimitExceeded,
    CreditUnavailable,
    EncounterClosed,
    VoucherRejected,
)
from payments.family import paying_account
from payments.hospitals import hospital_of
from payments.insurance import InsuranceClass
from payments.models import Bill, Charge, ChargeItem, CreditAccount, Encounter
from payments.states import AccountStatus, EncounterStatus
from payments.store import (
    by_id,
    connection,
    insert_rows,
    inserted,
    loaded,
    new_id,
    write,
    writes_together,
)


@dataclass(frozen=True)
class OpenedEncounter:
    """A new encounter and what the hospital may know of its patient (nothing in clear)."""

    encounter: Encounter
    masked_name: str | None
    age_group: str | None


async def open_encounter(
    ctx: AppContext,
    principal: Principal,
    *,
    code: str,
    department: str,
    insurance_voucher: str | None = None,
) -> OpenedEncounter:
    """Verify the patient's code (consuming it for this hospital's client), place a hold
    of min(initial hold, available credit) and get the bureau's token for the visit (from
    the e-voucher when the hospital read one, else from our code's identity)."""
    hospital_id = hospital_of(principal)
    verification = await verify_code(ctx, code, verifier_id=principal.id)
    if not verification.valid or verification.subject_id is None:
        raise CodeRejected(
            f"the code did not verify: {verification.reason}",
            extra={"reason": verification.reason},
        )
    subject_id = verification.subject_id
    rt = ctx.runtime(PaymentsRuntime)
    now = ctx.clock.now()
    async with in_transaction():
        conn = connection()
        lock = _OWN_ACCOUNT_PG if conn.capabilities.dialect == "postgres" else _OWN_ACCOUNT_SQL
        rows = await conn.execute_query_dict(sql_for(conn, lock, 1), [subject_id])
        if rows:
            account: CreditAccount = loaded(CreditAccount, rows[0])
        else:
            # No credit of their own: a guardian's (family.py), locked as their own would be.
            known = await paying_account(subject_id)
            if known is None:
                raise CreditUnavailable(
                    "the patient has not enrolled for credit", extra={"reason": "not_enrolled"}
                )
            account = await by_id(CreditAccount, known.id, lock=True)
        use = await credit_use(account)
        if account.status != AccountStatus.ACTIVE or use.overdue:
            raise CreditUnavailable(
                "the credit account is suspended", extra={"reason": "suspended"}
            )
        available = available_fen(account, use)
        if available <= 0:
            raise CreditUnavailable("no credit left", extra={"reason": "no_credit_left"})
        encounter_id = new_id("enc")
        token = await _authorize(ctx, subject_id, encounter_id, hospital_id, insurance_voucher)
        encounter: Encounter = await inserted(
            Encounter,
            {
                "id": encounter_id,
                "hospital_id": hospital_id,
                "subject_id": subject_id,
                "account_id": account.id,
                "department": department,
                "status": EncounterStatus.OPEN.value,
                "hold_fen": min(rt.config.initial_hold_fen, available),
                "charged_fen": 0,
                "opened_at": now,
                "closed_at": None,
                "closed_by": None,
                "ec_token": token.token if token else None,
                "ec_token_expires_at": token.expires_at if token else None,
            },
        )
    return OpenedEncounter(encounter, verification.masked_name, verification.age_group)


async def _authorize(
    ctx: AppContext, subject_id: str, visit_id: str, hospital_id: str, voucher: str | None
) -> EcToken | None:
    """The bureau's token for the visit. Unreachable at opening is no reason to refuse care:
    the token is fetched again before the quote or the settlement needs it."""
    rt = ctx.runtime(PaymentsRuntime)
    try:
        return await rt.bureau.authorize(
            subject_id=subject_id,
            visit_id=visit_id,
            hospital_id=hospital_id,
            voucher=voucher,
            now=ctx.clock.now(),
        )
    except BureauRefused as exc:
        if voucher is None:
            return None
        raise VoucherRejected(str(exc), extra={"reason": exc.reason}) from None
    except BureauError:
        if voucher is None:
            return None
        raise BureauUnavailable(
            "the insurance bureau did not answer; read the voucher again"
        ) from None


async def visit_token(ctx: AppContext, encounter: Encounter, *, renew: bool = False) -> str:
    """The encounter's ec_token, fetched again (through our code's identity) when it is
    missing, expired or refused."""
    now = ctx.clock.now()
    expires = encounter.ec_token_expires_at
    if not renew and encounter.ec_token and expires is not None and expires > now:
        return encounter.ec_token
    token = await _authorize(ctx, encounter.subject_id, encounter.id, encounter.hospital_id, None)
    if token is None:
        raise BureauUnavailable("the insurance bureau is unreachable; try again shortly")
    encounter.ec_token, encounter.ec_token_expires_at = token.token, token.expires_at
    await Encounter.filter(id=encounter.id).update(
        ec_token=token.token, ec_token_expires_at=token.expires_at
    )
    return token.token


async def get_encounter(principal: Principal, encounter_id: str) -> Encounter:
    """An encounter of the client's hospital."""
    return await find_encounter(hospital_of(principal), encounter_id)


async def find_encounter(hospital_id: str, encounter_id: str) -> Encounter:
    # Another hospital's encounter answers 404: its existence must not leak.
    encounter = await Encounter.get_or_none(id=encounter_id, hospital_id=hospital_id)
    if encounter is None:
        raise NotFound("no such encounter")
    return encounter


@dataclass(frozen=True)
class ItemInput:
    item_code: str
    name: str
    category: str
    quantity: int
    unit_price_fen: int
    insurance_class: InsuranceClass

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@dataclass(frozen=True)
class ChargeResult:
    charge: Charge
    items: list[ChargeItem]
    encounter: Encounter
    created: bool


async def post_charge(
    ctx: AppContext,
    principal: Principal,
    *,
    encounter_id: str,
    charge_id: str,
    items: Sequence[ItemInput],
) -> ChargeResult:
    """Add a charge, extending the hold while credit remains; idempotent by `charge_id`."""
    hospital_id = hospital_of(principal)
    fingerprint = canonical_hash([vars(i) for i in items])
    amount = sum(i.amount_fen for i in items)
    config = ctx.runtime(PaymentsRuntime).config
    for i in items:
        if i.amount_fen > config.line_ceiling_fen:
            raise AmountImplausible(
                f"a line of {i.amount_fen} fen passes the ceiling of {config.line_ceiling_fen}",
                extra={"item_code": i.item_code, "ceiling_fen": config.line_ceiling_fen},
            )
    now = ctx.clock.now()
    charge_values = {
        "id": new_id("chg"),
        "encounter_id": encounter_id,
        "charge_id": charge_id,
        "amount_fen": amount,
        "refunded_fen": 0,
        "request_hash": fingerprint,
        "created_at": now,
    }
    if connection().capabilities.dialect == "postgres":
        ceiling = config.encounter_ceiling_fen
        fast = await _charge_within_hold(hospital_id, charge_values, items, ceiling)
        if fast is not None:
            return fast
    async with in_transaction():
        conn = connection()
        postgres = conn.capabilities.dialect == "postgres"
        # The account's lock, found through the encounter (another hospital's: 404).
        rows = await conn.execute_query_dict(
            sql_for(conn, _LOCK_ACCOUNT_PG if postgres else _LOCK_ACCOUNT_SQL, 2),
            [encounter_id, hospital_id],
        )
        if not rows:
            raise NotFound("no such encounter")
        account: CreditAccount = loaded(CreditAccount, rows[0])
        # Then the encounter's, with whether this charge_id was posted before.
        rows = await conn.execute_query_dict(
            sql_for(conn, _LOCK_ENCOUNTER_PG if postgres else _LOCK_ENCOUNTER_SQL, 2),
            [charge_id, encounter_id],
        )
        posted_before = rows[0].pop("posted_charge") is not None
        encounter: Encounter = loaded(Encounter, rows[0])
        if posted_before:
            existing = await Charge.get(encounter_id=encounter_id, charge_id=charge_id)
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused("this charge_id was used with other items")
            stored = await ChargeItem.filter(charge_id=existing.id).order_by("position")
            return ChargeResult(existing, stored, encounter, created=False)
        # closed_at is set when closing starts: no charge may slip in behind the bureau.
        if encounter.status != EncounterStatus.OPEN or encounter.closed_at is not None:
            raise EncounterClosed("the encounter is closed; post no more charges")
        if encounter.charged_fen + amount > config.encounter_ceiling_fen:
            raise AmountImplausible(
                f"the encounter would pass its ceiling of {config.encounter_ceiling_fen} fen",
                extra={"ceiling_fen": config.encounter_ceiling_fen},
            )
        await _extend_hold(account, encounter, amount)
        encounter.charged_fen += amount
        async with writes_together():
            await write(_CHARGED_SQL, [encounter.hold_fen, encounter.charged_fen, encounter.id])
            charge: Charge = await inserted(Charge, charge_values)
            rows_in = [_item_row(charge, n, i) for n, i in enumerate(items)]
            await insert_rows(
                conn,
                "payments_charge_items",
                _ITEM_COLUMNS,
                [tuple(getattr(r, c) for c in _ITEM_COLUMNS) for r in rows_in],
            )
        return ChargeResult(charge, rows_in, encounter, created=True)


async def _charge_within_hold(
    hospital_id: str, values: dict[str, Any], items: Sequence[ItemInput], ceiling_fen: int
) -> ChargeResult | None:
    """PostgreSQL, the common charge: new, on an open encounter of this hospital, within its
    hold and ceiling. One statement adds it to the encounter (whose row lock it takes, and
    whose conditions it checks again on the row as locked), stores it and its items; no
    row, or a concurrent charge with the same charge_id (the unique key), leaves every
    other case to the locked way. It needs no credit decision, so no account lock."""
    conn = connection()
    amount = values["amount_fen"]
    args: list[Any] = [
        amount,
        values["encounter_id"],
        hospital_id,
        EncounterStatus.OPEN.value,
        ceiling_fen,
        values["charge_id"],
        values["id"],
        values["request_hash"],
        values["created_at"],
    ]
    for n, i in enumerate(items):
        args += [n, i.item_code, i.name, i.category, i.quantity, i.unit_price_fen]
        args += [i.insurance_class, i.amount_fen]
    try:
        rows = await conn.execute_query_dict(sql_for(conn, _charge_pg(len(items)), len(args)), args)
    except IntegrityError:
        return None
    if not rows:
        return None
    charge: Charge = loaded(Charge, values)
    stored = [_item_row(charge, n, i) for n, i in enumerate(items)]
    return ChargeResult(charge, stored, loaded(Encounter, rows[0]), created=True)


@lru_cache(maxsize=32)
def _charge_pg(n_items: int) -> str:
    types = ("int", "text", "text", "text", "int", "bigint", "text", "bigint")
    rows = ", ".join(
        "(" + ", ".join(f"{{{9 + 8 * r + k}}}::{t}" for k, t in enumerate(types)) + ")"
        for r in range(n_items)
    )
    return _CHARGE_PG.replace("{items}", rows)


_CHARGE_PG = """
WITH e AS (
  UPDATE payments_encounters SET charged_fen = charged_fen + {0}
  WHERE id = {1} AND hospital_id = {2} AND status = {3} AND closed_at IS NULL
    AND charged_fen + {0} <= hold_fen AND charged_fen + {0} <= {4}
    AND NOT EXISTS (SELECT 1 FROM payments_charges WHERE encounter_id = {1} AND charge_id = {5})
  RETURNING *
), c AS (
  INSERT INTO payments_charges (id, encounter_id, charge_id, amount_fen, refunded_fen,
                                request_hash, created_at)
  SELECT {6}, e.id, {5}, {0}, 0, {7}, {8} FROM e
  RETURNING id
), i AS (
  INSERT INTO payments_charge_items (charge_id, position, item_code, name, category, quantity,
                                     unit_price_fen, insurance_class, amount_fen)
  SELECT c.id, v.* FROM c, (VALUES {items}) AS v
)
SELECT * FROM e
"""
_OWN_ACCOUNT_SQL = "SELECT * FROM payments_credit_accounts WHERE subject_id = {}"
_OWN_ACCOUNT_PG = _OWN_ACCOUNT_SQL + " FOR UPDATE"
# Locks in the payments order: the account (found through the encounter), then the encounter.
_LOCK_ACCOUNT_SQL = (
    "SELECT * FROM payments_credit_accounts WHERE id = "
    "(SELECT account_id FROM payments_encounters WHERE id = {} AND hospital_id = {})"
)
_LOCK_ACCOUNT_PG = _LOCK_ACCOUNT_SQL + " FOR UPDATE"
_LOCK_ENCOUNTER_SQL = (
    "SELECT e.*, (SELECT c.id FROM payments_charges c WHERE c.encounter_id = e.id "
    "AND c.charge_id = {}) AS posted_charge FROM payments_encounters e WHERE e.id = {}"
)
_LOCK_ENCOUNTER_PG = _LOCK_ENCOUNTER_SQL + " FOR UPDATE"
_CHARGED_SQL = "UPDATE payments_encounters SET hold_fen = {}, charged_fen = {} WHERE id = {}"
# What a charge item and a bill line both record of an item.
ITEM_FIELDS = (
    "item_code",
    "name",
    "category",
    "quantity",
    "unit_price_fen",
    "insurance_class",
    "amount_fen",
)
_ITEM_COLUMNS = ("charge_id", "position", *ITEM_FIELDS)


async def _extend_hold(account: CreditAccount, encounter: Encounter, amount_fen: int) -> None:
    """Grow the hold by what the charge passes it by, while the account has credit left."""
    needed = encounter.charged_fen + amount_fen - encounter.hold_fen
    if needed <= 0:
        return
    use = await credit_use(account)
    available = 0 if account.status != AccountStatus.ACTIVE else available_fen(account, use)
    if needed > available:
        raise CreditLimitExceeded(
            "the charge needs more credit than the patient has left",
            extra={"available_fen": available, "needed_fen": needed},
        )
    encounter.hold_fen += needed


def _item_row(charge: Charge, position: int, item: ItemInput) -> ChargeItem:
    return ChargeItem(
        charge_id=charge.id,
        position=position,
        item_code=item.item_code,
        name=item.name,
        category=item.category,
        quantity=item.quantity,
        unit_price_fen=item.unit_price_fen,
        insurance_class=item.insurance_class,
        amount_fen=item.amount_fen,
    )


@dataclass(frozen=True)
class DayEncounter:
    """One row of the desk's list: the encounter, its bill once settled, the masked name."""

    encounter: Encounter
    bill: Bill | None
    masked_name: str | None


DAY_LIST_LIMIT = 1000


async def encounters_of_day(ctx: AppContext, principal: Principal, day: date) -> list[DayEncounter]:
    """The client's hospital's encounters opened on one local day (the payments zone),
    newest first, at most `DAY_LIST_LIMIT`."""
    hospital_id = hospital_of(principal)
    tz = timezone(timedelta(hours=ctx.runtime(PaymentsRuntime).config.utc_offset_hours))
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    rows = (
        await Encounter.filter(
            hospital_id=hospital_id, opened_at__gte=start, opened_at__lt=start + timedelta(days=1)
        )
        .order_by("-opened_at", "-id")
        .limit(DAY_LIST_LIMIT)
    )
    bills = {b.encounter_id: b for b in await Bill.filter(encounter_id__in=[e.id for e in rows])}
    now = ctx.clock.now()
    names: dict[str, str | None] = {}
    for subject_id in {e.subject_id for e in rows}:
        profile = await subject_profile(subject_id, now=now)
        names[subject_id] = profile.masked_name if profile else None
    return [DayEncounter(e, bills.get(e.id), names[e.subject_id]) for e in rows]
