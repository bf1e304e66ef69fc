"""The medical-insurance bureau as a provider (`SUISHEN_INSURANCE_BUREAU`), and its `sandbox`.

The hospital reads the patient's e-voucher (医保电子凭证) or our code; the bureau answers
with a short-lived `ec_token` bound to the visit. With it: the insured person's standing,
a pre-settlement (nothing changes), a settlement (idempotent by our key: asking again
returns the first one) and its reversal.

Failures: `BureauTimeout` (the answer is unknown; ask again with the same key),
`BureauDown` (nothing was done; try later), `BureauRefused` (a definite no, with `reason`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, Protocol

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.db import sql_for
from payments import segments
from payments.insurance import BureauParts
from payments.models import SandboxBureauOperation, SandboxInsured
from payments.store import as_json, connection, loaded

TOKEN_PREFIX = "ect1."  # noqa: S105 (a format marker, not a secret)


class BureauError(Exception):
    """Base of the bureau's failures."""


class BureauTimeout(BureauError):
    """No answer in time: the settlement may or may not have happened; ask again."""


class BureauDown(BureauError):
    """The bureau refused the connection: nothing happened; try again later."""


class BureauRefused(BureauError):
    """A definite refusal (`reason`: token_invalid, token_expired, not_insured, ...)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class EcToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Claim:
    """What a settlement is asked for: the visit's lines at a hospital of a tier."""

    lines: Sequence[segments.Line]
    tier: int


class InsuranceBureau(Protocol):
    name: str

    async def authorize(
        self,
        *,
        subject_id: str,
        visit_id: str,
        hospital_id: str,
        voucher: str | None,
        now: datetime,
    ) -> EcToken:
        """Read the e-voucher (or trust our code's subject) and bind a token to the visit."""

    async def standing(self, *, ec_token: str, visit_id: str, now: datetime) -> segments.Standing:
        """The insured person's category, balances and year-to-date use."""

    async def pre_settle(
        self, *, ec_token: str, visit_id: str, claim: Claim, now: datetime
    ) -> segments.Segments:
        """The split the bureau would settle now; changes nothing."""

    async def settle(
        self, *, key: str, ec_token: str, visit_id: str, claim: Claim, now: datetime
    ) -> segments.Segments:
        """Settle once per `key`; asking again returns the first settlement."""

    async def reverse(
        self, *, key: str, settlement_key: str, now: datetime, parts: BureauParts | None = None
    ) -> BureauParts:
        """Undo a settlement, or `parts` of it (a refund), idempotent by `key`: each payer's
        share goes back to its account (fund use, accumulated and current-year account).
        Returns what was reversed; the same key with other parts is refused (`key_reused`),
        so is more than the settlement left to reverse (`exceeds_settlement`)."""


# The sandbox's test personas: a category and balances, or a failure mode. Enrolment may
# name one in the sandbox only (docs/payments.md lists them).
PERSONAS: dict[str, dict[str, int | str]] = {
    "employee": {"category": "employee"},
    "employee_45": {"category": "employee_45"},
    "retired": {"category": "retired"},
    "retired_before_2001": {"category": "retired_before_2001"},
    "uninsured": {"category": "uninsured"},
    # Settles at the bureau on the first attempt of each key but answers with a timeout.
    "timeout": {"category": "employee", "behaviour": "timeout_once"},
    # Refuses every settlement: the person's insurance is suspended (欠费停保).
    "suspended": {"category": "employee", "behaviour": "refuse"},
    # Settles at once but answers only after `slow_answer_s` (a congested front end).
    "slow": {"category": "employee", "behaviour": "slow"},
}
DEFAULT_PERSONA = "employee"


class SandboxBureau:
    """Behaves like the bureau's test environment, keeping its books in its own tables.

    `down=True` (SUISHEN_BUREAU_SANDBOX_DOWN=1, or set on the running instance) makes
    every call fail with `BureauDown`, as when the bureau's front end is unreachable.
    """

    name = "sandbox"

    def __init__(self, key: bytes, *, token_ttl: timedelta = timedelta(hours=2)) -> None:
        self._key = hmac.new(key, b"insurance-bureau-sandbox", hashlib.sha256).digest()
        self.token_ttl = token_ttl
        self.down = False
        self.slow_answer_s = 3.0

    # -- tokens -------------------------------------------------------------------------

    async def authorize(
        self,
        *,
        subject_id: str,
        visit_id: str,
        hospital_id: str,
        voucher: str | None,
        now: datetime,
    ) -> EcToken:
        self._reachable()
        if voucher is not None and not voucher.startswith("sbv:"):
            raise BureauRefused("voucher_invalid", "the e-voucher did not read")
        person = voucher[4:] if voucher is not None else subject_id
        expires = now + self.token_ttl
        claims = {"p": person, "v": visit_id, "h": hospital_id, "e": int(expires.timestamp())}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, body, hashlib.sha256).hexdigest()[:32]
        return EcToken(f"{TOKEN_PREFIX}{body.decode()}.{mac}", expires)

    def _person(self, ec_token: str, visit_id: str, now: datetime) -> str:
        body, _, mac = ec_token.removeprefix(TOKEN_PREFIX).rpartition(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not ec_token.startswith(TOKEN_PREFIX) or not hmac.compare_digest(mac, expected):
            raise BureauRefused("token_invalid", "the ec_token is not the bureau's")
        claims = json.loads(base64.urlsafe_b64decode(body))
        if claims["v"] != visit_id:
            raise BureauRefused("token_invalid", "the ec_token belongs to another visit")
        if claims["e"] < now.timestamp():
            raise BureauRefused("token_expired", "the ec_token expired; read the voucher again")
        person: str = claims["p"]
        return person

    def _reachable(self) -> None:
        if self.down:
            raise BureauDown("the sandbox bureau is down")

    # -- the books ------------------------------------------------------------------------

    async def enrol_persona(
        self, subject_id: str, persona: str, now: datetime, **standing: int
    ) -> None:
        """Set a test person's standing (sandbox only)."""
        spec = PERSONAS[persona]
        rules = segments.rules_for(now.date())
        values = {
            "category": spec["category"],
            "behaviour": spec.get("behaviour", ""),
            "medical_year": rules.medical_year(now.date()),
            "current_account_fen": standing.get("current_account_fen", 0),
            "accumulated_account_fen": standing.get("accumulated_account_fen", 0),
            "deductible_used_fen": standing.get("deductible_used_fen", 0),
            "fund_used_fen": standing.get("fund_used_fen", 0),
            "updated_at": now,
        }
        await SandboxInsured.update_or_create(defaults=values, subject_id=subject_id)

    async def _row(self, person: str, now: datetime) -> SandboxInsured:
        row = await SandboxInsured.get_or_none(subject_id=person)
        if row is None:
            row = SandboxInsured(subject_id=person, category=DEFAULT_PERSONA, behaviour="")
            row.medical_year = segments.rules_for(now.date()).medical_year(now.date())
        return row

    @staticmethod
    def _standing(row: SandboxInsured, now: datetime) -> segments.Standing:
        rules = segments.rules_for(now.date())
        new_year = row.medical_year != rules.medical_year(now.date())
        # A new medical year: the deductible and the fund's cap start again from nothing.
        return segments.Standing(
            category=row.category if row.category != "uninsured" else DEFAULT_PERSONA,
            current_account_fen=row.current_account_fen,
            accumulated_account_fen=row.accumulated_account_fen,
            deductible_used_fen=0 if new_year else row.deductible_used_fen,
            fund_used_fen=0 if new_year else row.fund_used_fen,
            insured=row.category != "uninsured",
        )

    async def standing(self, *, ec_token: str, visit_id: str, now: datetime) -> segments.Standing:
        self._reachable()
        person = self._person(ec_token, visit_id, now)
        return self._standing(await self._row(person, now), now)

    async def pre_settle(
        self, *, ec_token: str, visit_id: str, claim: Claim, now: datetime
    ) -> segments.Segments:
        standing = await self.standing(ec_token=ec_token, visit_id=visit_id, now=now)
        return segments.split(claim.lines, standing, claim.tier, segments.rules_for(now.date()))

    async def settle(
        self, *, key: str, ec_token: str, visit_id: str, claim: Claim, now: datetime
    ) -> segments.Segments:
        self._reachable()
        conn = connection()
        # Whether the key was settled before and the standing of the person the token names
        # (checked next, unless the first answer is given again), in one query.
        claimed = _claimed_person(ec_token)
        found = (await conn.execute_query_dict(sql_for(conn, _READ_SQL, 2), [key, claimed]))[0]
        if found.pop("settled_key") is not None:
            return await self._again(await SandboxBureauOperation.get(key=key))
        person = self._person(ec_token, visit_id, now)
        read: SandboxInsured | None = None
        if person == claimed and found["subject_id"] is not None:
            read = loaded(SandboxInsured, found)
        rules = segments.rules_for(now.date())
        for attempt in (1, 2):
            try:
                asked = _Asked(key, person, claim, rules, now)
                row, result = await self._settle_once(asked, read)
                read = None  # a second attempt reads afresh
                break
            except IntegrityError:
                # Rolled back whole (on PostgreSQL the transaction is unusable after the
                # error): a concurrent settle with this key committed first, or enrolled
                # the person first; answer with its result, or try once more.
                done = await SandboxBureauOperation.get_or_none(key=key)
                if done is not None:
                    return await self._again(done)
                if attempt == 2:
                    raise
        if row.behaviour == "timeout_once":
            raise BureauTimeout(f"the sandbox bureau settled {key} but the answer was lost")
        if row.behaviour == "slow":
            await asyncio.sleep(self.slow_answer_s)
        return result

    async def _settle_once(
        self, asked: _Asked, read: SandboxInsured | None = None
    ) -> tuple[SandboxInsured, segments.Segments]:
        """`read`: the person's standing as just read, for the first optimistic try."""
        key, person, claim, rules, now = asked
        conn = connection()
        if conn.capabilities.dialect == "postgres":
            for _ in range(OPTIMISTIC_TRIES):
                settled = await self._settle_unlocked(conn, asked, read)
                read = None
                if settled is False:
                    continue
                if settled is None:
                    break  # not enrolled yet: the locked way enrols them
                return settled
        async with in_transaction():
            row = await SandboxInsured.filter(subject_id=person).select_for_update().first()
            if row is None:
                await self.enrol_persona(person, DEFAULT_PERSONA, now)
                row = await SandboxInsured.filter(subject_id=person).select_for_update().get()
            if row.behaviour == "refuse":
                raise BureauRefused("insurance_suspended", "the person's insurance is suspended")
            before = self._standing(row, now)
            result = segments.split(claim.lines, before, claim.tier, rules)
            await SandboxBureauOperation.create(
                key=key, kind="settle", subject_id=person, result=result.to_json(), created_at=now
            )
            await self._store(
                row, segments.apply(before, result), rules.medical_year(now.date()), now
            )
        return row, result

    async def _settle_unlocked(
        self, conn: BaseDBAsyncClient, asked: _Asked, read: SandboxInsured | None = None
    ) -> tuple[SandboxInsured, segments.Segments] | Literal[False] | None:
        """PostgreSQL: read the standing, split, then store the new standing and the
        operation in one statement that holds only if the standing is still what was read
        (the split depends on nothing else). False when it changed meanwhile (try again),
        None when the person has no row. Three round trips instead of six, no transaction."""
        key, person, claim, rules, now = asked
        row = read
        if row is None:
            rows = await conn.execute_query_dict(sql_for(conn, _INSURED_SQL, 1), [person])
            if not rows:
                return None
            row = loaded(SandboxInsured, rows[0])
        if row.behaviour == "refuse":
            raise BureauRefused("insurance_suspended", "the person's insurance is suspended")
        before = self._standing(row, now)
        result = segments.split(claim.lines, before, claim.tier, rules)
        after = segments.apply(before, result)
        year = rules.medical_year(now.date())
        stored = await conn.execute_query_dict(
            sql_for(conn, _SETTLE_PG, 16),
            [
                after.current_account_fen,
                after.accumulated_account_fen,
                after.deductible_used_fen,
                after.fund_used_fen,
                year,
                now,
                person,
                row.current_account_fen,
                row.accumulated_account_fen,
                row.deductible_used_fen,
                row.fund_used_fen,
                row.medical_year,
                row.category,
                row.behaviour,
                key,
                as_json(result.to_json()),
            ],
        )
        if not stored:
            return False
        return row, result

    async def _again(self, done: SandboxBureauOperation) -> segments.Segments:
        if done.kind != "settle":
            raise BureauRefused("key_reused", f"key {done.key} was used for a {done.kind}")
        await SandboxBureauOperation.filter(key=done.key).update(attempts=done.attempts + 1)
        return segments.Segments.from_json(done.result)

    @staticmethod
    async def _store(
        row: SandboxInsured, after: segments.Standing, year: int, now: datetime
    ) -> None:
        row.current_account_fen = after.current_account_fen
        row.accumulated_account_fen = after.accumulated_account_fen
        row.deductible_used_fen = after.deductible_used_fen
        row.fund_used_fen = after.fund_used_fen
        row.medical_year = year
        row.updated_at = now
        await row.save()

    async def reverse(
        self, *, key: str, settlement_key: str, now: datetime, parts: BureauParts | None = None
    ) -> BureauParts:
        self._reachable()
        done = await SandboxBureauOperation.get_or_none(key=key)
        if done is not None:
            return self._reversed_again(done, settlement_key, parts)
        settled = await SandboxBureauOperation.get_or_none(key=settlement_key, kind="settle")
        if settled is None:
            raise BureauRefused("no_such_settlement", f"nothing was settled under {settlement_key}")
        result = segments.Segments.from_json(settled.result)
        whole = BureauParts(result.fund_fen, result.accumulated_fen, result.current_account_fen)
        async with in_transaction():
            row = (
                await SandboxInsured.filter(subject_id=settled.subject_id).select_for_update().get()
            )
            earlier = BureauParts()
            for op in await SandboxBureauOperation.filter(
                subject_id=settled.subject_id, kind="reverse"
            ):
                if op.result.get("settlement_key") == settlement_key:
                    earlier += _parts_of(op)
            asked = parts if parts is not None else whole - earlier
            left = whole - earlier - asked
            if (
                min(asked.fund_fen, asked.accumulated_fen, asked.current_account_fen) < 0
                or min(left.fund_fen, left.accumulated_fen, left.current_account_fen) < 0
            ):
                raise BureauRefused("exceeds_settlement", f"{asked} is more than is left of it")
            await SandboxBureauOperation.create(
                key=key,
                kind="reverse",
                subject_id=settled.subject_id,
                result={"settlement_key": settlement_key, **asdict(asked)},
                created_at=now,
            )
            row.current_account_fen += asked.current_account_fen
            row.accumulated_account_fen += asked.accumulated_fen
            row.fund_used_fen -= asked.fund_fen
            if parts is None:
                # Only a whole reversal gives the deductible back: a partial one (a refund
                # of some lines) leaves the visit counting towards it.
                row.deductible_used_fen -= result.deductible_applied_fen
            row.updated_at = now
            await row.save()
        return asked

    @staticmethod
    def _reversed_again(
        done: SandboxBureauOperation, settlement_key: str, parts: BureauParts | None
    ) -> BureauParts:
        before = _parts_of(done)
        same = done.result.get("settlement_key") == settlement_key
        if done.kind != "reverse" or not same or (parts is not None and parts != before):
            raise BureauRefused("key_reused", f"key {done.key} was used for another operation")
        return before


class _Asked(NamedTuple):
    """A settlement asked of the sandbox: the key, whom for, what, under which rules, when."""

    key: str
    person: str
    claim: Claim
    rules: segments.RuleSet
    now: datetime


OPTIMISTIC_TRIES = 3
_READ_SQL = (
    "SELECT o.key AS settled_key, i.* FROM (SELECT 1 AS one) x "
    "LEFT JOIN payments_bureau_sandbox_operations o ON o.key = {} "
    "LEFT JOIN payments_bureau_sandbox_insured i ON i.subject_id = {}"
)
_INSURED_SQL = "SELECT * FROM payments_bureau_sandbox_insured WHERE subject_id = {}"
_SETTLE_PG = """
WITH u AS (
  UPDATE payments_bureau_sandbox_insured
  SET current_account_fen = {0}, accumulated_account_fen = {1}, deductible_used_fen = {2},
      fund_used_fen = {3}, medical_year = {4}, updated_at = {5}
  WHERE subject_id = {6} AND current_account_fen = {7} AND accumulated_account_fen = {8}
    AND deductible_used_fen = {9} AND fund_used_fen = {10} AND medical_year = {11}
    AND category = {12} AND behaviour = {13}
  RETURNING subject_id
)
INSERT INTO payments_bureau_sandbox_operations (key, kind, subject_id, result, attempts, created_at)
SELECT {14}, 'settle', u.subject_id, {15}, 1, {5} FROM u RETURNING key
"""


def _claimed_person(ec_token: str) -> str | None:
    """Whom a token names, unchecked (`_person` checks it before anything is settled)."""
    try:
        body = ec_token.removeprefix(TOKEN_PREFIX).rpartition(".")[0]
        person = json.loads(base64.urlsafe_b64decode(body))["p"]
    except (ValueError, KeyError, TypeError):
        return None
    return person if isinstance(person, str) else None


def _parts_of(op: SandboxBureauOperation) -> BureauParts:
    r = op.result
    return BureauParts(
        int(r.get("fund_fen", 0)),
        int(r.get("accumulated_fen", 0)),
        int(r.get("current_account_fen", 0)),
    )


def create_bureau(name: str, key: bytes) -> InsuranceBureau:
    if name == "sandbox":
        return SandboxBureau(key)
    raise ValueError(f"unknown insurance bureau {name!r}")
