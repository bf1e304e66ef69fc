"""The daily statement: domain totals that agree with the ledger, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import ledger
from payments.models import Bill, LedgerEntry
from tests.payments.helpers import (
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    refund,
)


async def ledger_net(hospital_id: str, account_kind: str, day: str) -> int:
    entries = await LedgerEntry.filter(transfer__hospital_id=hospital_id).prefetch_related(
        "transfer"
    )
    return sum(
        e.amount_fen
        for e in entries
        if ledger.account_kind(e.account) == account_kind
        and e.transfer.created_at.date().isoformat() == day
    )


async def test_statement_totals_equal_the_ledger(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    clock.set(clock.now().replace(hour=10, minute=0, second=0))
    day = clock.now().date().isoformat()
    where, other = await hospital(client, ctx), await hospital(client, ctx)
    paying = await patient(client, ctx)
    declining = await patient(client, ctx, payment_method="pm_sandbox_declined")
    uninsured = await patient(client, ctx, insured=False)
    first = await open_encounter(client, where, paying)
    await charge(client, where, first["id"], [item(10_000, "A"), item(3_333, "B")], "a")
    await charge(client, where, first["id"], [item(777, "C", 3)], "b")
    await refund(client, where, first["id"], "b", 500)
    await close(client, where, first["id"])
    await refund(client, where, first["id"], "a", 4_321)
    second = await open_encounter(client, where, declining)
    await charge(client, where, second["id"], [item(8_888, "B")], "x")
    await close(client, where, second["id"])
    third = await open_encounter(client, where, uninsured)
    await charge(client, where, third["id"], [item(1_234, "A")], "y")
    await open_encounter(client, other, await patient(client, ctx))  # not in this statement

    response = await client.get(
        "/v1/hospitals/me/statements", params={"date": day}, headers=where.headers
    )
    assert response.status_code == 200, response.text
    s = response.json()
    assert s["encounters_opened"] == 3
    assert s["charges"]["count"] == 4
    assert s["charges"]["amount_fen"] == 10_000 + 3_333 + 2_331 + 8_888 + 1_234
    after = s["refunds_after_settlement"]
    settled = s["settlements"]
    assert settled["count"] == 2
    assert settled["amount_fen"] == 10_000 + 3_333 + 2_331 - 500 + 8_888
    assert (
        -await ledger_net(where.id, "hospital", day) == settled["amount_fen"] - after["amount_fen"]
    )
    assert await ledger_net(where.id, "insurance_fund", day) == (
        settled["insurance_fen"] - after["insurance_fen"]
    )
    assert await ledger_net(where.id, "provider_clearing", day) == (
        s["collected_fen"] - s["paid_out_fen"]
    )
    assert await ledger_net(where.id, "resident", day) == (
        settled["self_pay_fen"] - after["self_pay_fen"] - s["collected_fen"] + s["paid_out_fen"]
    )
    assert s["outstanding_fen"] == (await ledger_net(where.id, "resident", day))
    assert s["ledger"] == {
        "hospital_fen": await ledger_net(where.id, "hospital", day),
        "insurance_fund_fen": await ledger_net(where.id, "insurance_fund", day),
        "resident_fen": await ledger_net(where.id, "resident", day),
        "provider_clearing_fen": await ledger_net(where.id, "provider_clearing", day),
        "personal_current_fen": await ledger_net(where.id, "personal_current", day),
        "personal_accumulated_fen": await ledger_net(where.id, "personal_accumulated", day),
    }
    # The day's e-invoices: a blue one per settled bill, a red one for the refund after
    # settlement referring to the first bill's blue one; blue + red = what was finally billed.
    listed = s["invoices"]
    blue = [i for i in listed["invoices"] if i["kind"] == "blue"]
    [red] = [i for i in listed["invoices"] if i["kind"] == "red"]
    bills = {b.encounter_id: b.id for b in await Bill.filter(hospital_id=where.id)}
    assert [i["bill_id"] for i in blue] == [bills[first["id"]], bills[second["id"]]]
    assert [i["number"] for i in listed["invoices"]] == sorted(
        i["number"] for i in listed["invoices"]
    )
    assert red["bill_id"] == bills[first["id"]] and red["original_number"] == blue[0]["number"]
    assert red["total_fen"] == -4_321 == -after["amount_fen"]
    assert (red["insurance_fen"], red["cash_fen"]) == (
        -after["insurance_fen"],
        -after["self_pay_fen"],
    )
    assert sum(i["total_fen"] for i in blue) == listed["blue_total_fen"] == settled["amount_fen"]
    assert listed["blue_total_fen"] + listed["red_total_fen"] == (
        settled["amount_fen"] - after["amount_fen"]
    )
    assert listed["count"] == 3
    as_csv = await client.get(
        "/v1/hospitals/me/statements",
        params={"date": day, "format": "csv"},
        headers=where.headers,
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = {r["section"]: r for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert int(rows["settlements"]["amount_fen"]) == settled["amount_fen"]
    assert int(rows["ledger_hospital"]["amount_fen"]) == s["ledger"]["hospital_fen"]
    assert rows["invoice_red"]["number"] == f"{red['code']}-{red['number']}"
    assert rows["invoice_red"]["bill_id"] == red["bill_id"]
    assert int(rows["invoice_red"]["amount_fen"]) == -4_321
    by_accept = await client.get(
        "/v1/hospitals/me/statements",
        params={"date": day},
        headers={**where.headers, "Accept": "text/csv"},
    )
    assert by_accept.text == as_csv.text
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    empty = await client.get(
        "/v1/hospitals/me/statements", params={"date": tomorrow}, headers=where.headers
    )
    assert empty.json()["settlements"]["count"] == 0
    assert empty.json()["invoices"] == {
        "count": 0,
        "blue_total_fen": 0,
        "red_total_fen": 0,
        "invoices": [],
    }
    await check_books()


async def test_statement_date_is_validated(client: httpx.AsyncClient, ctx: AppContext) -> None:
    where = await hospital(client, ctx)
    bad = await client.get(
        "/v1/hospitals/me/statements", params={"date": "yesterday"}, headers=where.headers
    )
    assert bad.status_code == 422
