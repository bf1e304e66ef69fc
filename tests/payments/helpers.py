"""Helpers of the payments tests: factories for hospitals with their client, enrolled
patients, codes, encounters and charges (all built through the HTTP API), the books check,
and a provider that crashes on purpose."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from tortoise.functions import Sum

from app.context import AppContext
from payments import batches, ledger
from payments.config import PaymentsRuntime
from payments.models import (
    Bill,
    Collection,
    Encounter,
    LedgerEntry,
    LedgerTransfer,
    SandboxBureauOperation,
    SandboxOperation,
)
from payments.provider import PaymentProvider, ProviderResult
from tests.factories import Resident, code_of, login, machine, resident

_SEQ = itertools.count(1)


@dataclass(frozen=True)
class Hospital:
    id: str
    headers: dict[str, str]
    client_id: str
    client_secret: str


async def hospital_token(client: httpx.AsyncClient, client_id: str, client_secret: str) -> str:
    token = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    assert token.status_code == 200, token.text
    access: str = token.json()["access_token"]
    return access


async def refreshed(client: httpx.AsyncClient, where: Hospital) -> Hospital:
    """The same hospital with a new access token (after the clock moved past its expiry)."""
    token = await hospital_token(client, where.client_id, where.client_secret)
    return dataclasses.replace(where, headers={"Authorization": f"Bearer {token}"})


async def relogged(client: httpx.AsyncClient, ctx: AppContext, person: Resident) -> Resident:
    """The same resident logged in afresh (after the clock moved past the tokens' expiry)."""
    tokens = await login(client, ctx, person.phone)
    return dataclasses.replace(
        person, token=tokens["access_token"], refresh_token=tokens["refresh_token"]
    )


async def hospital(
    client: httpx.AsyncClient, ctx: AppContext, name: str = "中山医院", tier: int = 2
) -> Hospital:
    """A hospital, of tier 2 (二级) by default: with the default patient the fund pays 70 %."""
    admin = await machine(client, ctx, "admin")
    created = await client.post(
        "/v1/hospitals", json={"name": name, "tier": tier}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    creds = body["client"]
    token = await hospital_token(client, creds["client_id"], creds["client_secret"])
    return Hospital(
        body["id"], {"Authorization": f"Bearer {token}"}, creds["client_id"], creds["client_secret"]
    )


async def patient(
    client: httpx.AsyncClient,
    ctx: AppContext,
    *,
    payment_method: str = "pm_sandbox_ok",
    insured: bool = True,
    deductible_met_fen: int = 150_000,
    persona: str = "employee_45",
    **standing: int,
) -> Resident:
    """An enrolled resident with a sandbox bureau persona: by default an employee of 45+
    whose deductible (1,500 yuan) is already met and whose personal accounts are empty, so
    at a tier-2 hospital splits are easy to read (the fund pays 70 % of what is covered)."""
    person = await resident(client, ctx)
    insurance = {
        "insured": insured,
        "persona": persona if insured else "uninsured",
        "deductible_met_fen": deductible_met_fen,
        **standing,
    }
    enrolled = await client.post(
        "/v1/credit/enroll",
        json={"payment_method": payment_method, "insurance": insurance},
        headers=person.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    return person


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def open_encounter(
    client: httpx.AsyncClient, where: Hospital, person: Resident, department: str = "内科"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/encounters",
        json={"code": await code_of(client, person), "department": department},
        headers={**where.headers, **key()},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def item(
    unit_price_fen: int, insurance_class: str = "A", quantity: int = 1, code: str | None = None
) -> dict[str, Any]:
    n = next(_SEQ)
    return {
        "item_code": code or f"ITEM{n}",
        "name": f"项目{n}",
        "category": "drug",
        "quantity": quantity,
        "unit_price_fen": unit_price_fen,
        "insurance_class": insurance_class,
    }


async def charge(
    client: httpx.AsyncClient,
    where: Hospital,
    encounter_id: str,
    items: list[dict[str, Any]],
    charge_id: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/encounters/{encounter_id}/charges",
        json={"charge_id": charge_id or f"c-{uuid.uuid4()}", "items": items},
        headers=where.headers,
    )


async def close(
    client: httpx.AsyncClient, where: Hospital, encounter_id: str, idem: str | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/encounters/{encounter_id}/close",
        headers={**where.headers, "Idempotency-Key": idem or str(uuid.uuid4())},
    )


async def refund(
    client: httpx.AsyncClient,
    where: Hospital,
    encounter_id: str,
    charge_id: str,
    amount_fen: int,
    refund_id: str | None = None,
) -> httpx.Response:
    return await client.post(
        f"/v1/encounters/{encounter_id}/refunds",
        json={
            "refund_id": refund_id or f"r-{uuid.uuid4()}",
            "charge_id": charge_id,
            "amount_fen": amount_fen,
        },
        headers=where.headers,
    )


def payments_runtime(ctx: AppContext) -> PaymentsRuntime:
    return ctx.runtime(PaymentsRuntime)


class InjectedCrash(RuntimeError):
    """Raised at a fault-injection point, standing in for the process dying there."""


@dataclass
class CrashingProvider:
    """Dies on every collection, as the process would between booking the ledger and the
    provider's answer; binds and pays out through the provider it stands in front of."""

    inner: PaymentProvider
    name: str = "crashing"

    async def bind(self, payment_method: str) -> None:
        await self.inner.bind(payment_method)

    async def collect(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        raise InjectedCrash("injected crash between booking the ledger and collecting")

    async def payout(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        return await self.inner.payout(
            key=key, payment_method=payment_method, amount_fen=amount_fen, now=now
        )


async def account_balances() -> dict[str, int]:
    """Each account's balance, summed by the database (the invariant tests compare it
    with the entries summed one by one)."""
    rows = (
        await LedgerEntry.annotate(balance=Sum("amount_fen"))
        .group_by("account")
        .values_list("account", "balance")
    )
    return {str(account): int(balance) for account, balance in rows}


async def ledger_rows() -> list[ledger.EntryRow]:
    rows = await LedgerEntry.all().values_list("transfer__key", "account", "amount_fen")
    return [ledger.EntryRow(k, a, v) for k, a, v in rows]


def taken_back(bill: Bill) -> tuple[int, int, int]:
    """(fund, accumulated, current) given back by the bill's refunds after settlement, by
    the documented order: the fund first, then the accumulated, then the current account."""
    refunded = bill.refunded_insurance_fen
    fund = min(bill.fund_fen, refunded)
    accumulated = min(
        bill.self_segment_accumulated_fen + bill.copay_accumulated_fen, refunded - fund
    )
    current = refunded - fund - accumulated
    assert 0 <= current <= bill.current_account_fen, bill.id
    return fund, accumulated, current


async def bureau_reversals() -> dict[str, tuple[int, int, int]]:
    """What the sandbox bureau's own books reversed, per settlement key."""
    out: dict[str, tuple[int, int, int]] = {}
    for op in await SandboxBureauOperation.filter(kind="reverse"):
        key = str(op.result.get("settlement_key", ""))
        f, a, c = out.get(key, (0, 0, 0))
        r = op.result
        out[key] = (f + r["fund_fen"], a + r["accumulated_fen"], c + r["current_account_fen"])
    return out


async def check_books() -> None:
    """The ledger's invariants, and the ledger against the bills and the sandbox's books."""
    rows = await ledger_rows()
    balances = await account_balances()
    assert ledger.invariant_violations(rows, balances) == []
    keys = await LedgerTransfer.all().values_list("key", flat=True)
    assert len(keys) == len(set(keys)), "a transfer key was posted twice"
    bills = await Bill.all()
    patients = dict(
        await Encounter.filter(id__in=[b.encounter_id for b in bills]).values_list(
            "id", "subject_id"
        )
    )
    reversed_at_bureau = await bureau_reversals()
    expected: dict[str, int] = {}
    for b in bills:
        # The personal accounts are the patient's (the encounter's), not the payer's.
        patient_id = str(patients[b.encounter_id])
        back = taken_back(b)
        assert reversed_at_bureau.get(b.bureau_settlement_id or "", (0, 0, 0)) == back, b.id
        fund_back, accumulated_back, current_back = back
        for account, amount in (
            (
                ledger.resident_account(b.subject_id),
                b.self_pay_fen - b.refunded_self_pay_fen - b.collected_fen + b.paid_out_fen,
            ),
            (
                ledger.hospital_account(b.hospital_id),
                -(b.total_fen - b.refunded_insurance_fen - b.refunded_self_pay_fen),
            ),
            # The bureau's side: each payer, less what refunds gave back to it.
            (ledger.INSURANCE_FUND, b.fund_fen - fund_back),
            (ledger.personal_current_account(patient_id), b.current_account_fen - current_back),
            (
                ledger.personal_accumulated_account(patient_id),
                b.self_segment_accumulated_fen + b.copay_accumulated_fen - accumulated_back,
            ),
            (ledger.PROVIDER_CLEARING, b.collected_fen - b.paid_out_fen),
        ):
            expected[account] = expected.get(account, 0) + amount
    assert {k: v for k, v in balances.items() if v} == {k: v for k, v in expected.items() if v}
    # The processor's side: what it moved per bill is what the bill says was moved.
    ops = {o.key: o for o in await SandboxOperation.all()}
    # A daily batch's charge covers every bill of a patient's day: compared per batch below.
    by_batch: dict[tuple[str | None, str], int] = {}
    for b in bills:
        collections = await Collection.filter(bill_id=b.id).exclude(trigger="batch")
        moved_in = sum(
            ops[c.id].amount_fen
            for c in collections
            if c.kind == "collect" and c.id in ops and ops[c.id].outcome == "succeeded"
        )
        if b.batch_id is not None:
            group = (b.batch_id, b.subject_id)
            by_batch[group] = by_batch.get(group, 0) + b.collected_fen - moved_in
            moved_in = b.collected_fen
        moved_out = sum(
            ops[c.id].amount_fen
            for c in collections
            if c.kind == "payout" and c.id in ops and ops[c.id].outcome == "succeeded"
        )
        settled = [c for c in collections if c.status == "succeeded"]
        assert moved_in == b.collected_fen or any(c.status == "pending" for c in collections)
        assert moved_out == b.paid_out_fen or any(c.status == "pending" for c in collections)
        assert len({c.id for c in settled}) == len(settled)
    for (batch_id, subject_id), collected in by_batch.items():
        charge = batches.batch_charge_key(str(batch_id), subject_id)
        moved = (
            ops[charge].amount_fen if charge in ops and ops[charge].outcome == "succeeded" else 0
        )
        pending = await Collection.filter(id=charge, status="pending").exists()
        assert moved == collected or pending, (batch_id, subject_id, moved, collected)
