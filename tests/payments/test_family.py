"""Family credit: a dependent treated on a guardian's credit line (the bill shows both), a
relative repaying a bill, and what that does to the guardian's credit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from payments import tasks
from payments.models import Bill, Invoice, LedgerTransfer
from tests.factories import Resident, assert_problem, code_of, resident, valid_id_number
from tests.payments.helpers import (
    Hospital,
    charge,
    check_books,
    close,
    hospital,
    item,
    key,
    patient,
    refreshed,
    relogged,
)

CHILD = "王小明"


async def guard(client: httpx.AsyncClient, guardian: Resident, id_number: str) -> str:
    response = await client.post(
        "/v1/residents/me/dependents",
        json={"name": CHILD, "id_number": id_number, "relation": "child"},
        headers=guardian.headers,
    )
    assert response.status_code == 201, response.text
    dependent_id: str = response.json()["dependent_id"]
    return dependent_id


async def child_visit(
    client: httpx.AsyncClient, where: Hospital, guardian: Resident, child_id: str
) -> httpx.Response:
    return await client.post(
        "/v1/encounters",
        json={
            "code": await code_of(client, guardian, dependent_id=child_id),
            "department": "儿科",
        },
        headers={**where.headers, **key()},
    )


async def treated_child(
    client: httpx.AsyncClient, ctx: AppContext, *, payment_method: str = "pm_sandbox_ok"
) -> tuple[Hospital, Resident, str, str, dict[str, Any]]:
    """A parent with credit, their child treated and settled on it:
    (hospital, parent, child id, id number, close answer)."""
    where = await hospital(client, ctx, name="复旦大学附属儿科医院")
    parent = await patient(client, ctx, payment_method=payment_method)
    number = valid_id_number()
    child_id = await guard(client, parent, number)
    opened = await child_visit(client, where, parent, child_id)
    assert opened.status_code == 201, opened.text
    assert opened.json()["patient"]["masked_name"] == "王*明"
    encounter_id = opened.json()["id"]
    await charge(client, where, encounter_id, [item(4_000, "C"), item(2_000, "A")])
    closed = await close(client, where, encounter_id)
    assert closed.status_code == 200, closed.text
    return where, parent, child_id, number, closed.json()


async def test_a_child_is_treated_on_the_parents_credit_and_the_bill_shows_both(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    parent = await patient(client, ctx)
    child_id = await guard(client, parent, valid_id_number())
    opened = await child_visit(client, where, parent, child_id)
    assert opened.status_code == 201, opened.text
    held = (await client.get("/v1/credit/me", headers=parent.headers)).json()
    assert [e["id"] for e in held["open_encounters"]] == [opened.json()["id"]]
    assert held["available_fen"] == held["limit_fen"] - held["holds_fen"]
    await charge(client, where, opened.json()["id"], [item(4_000, "C")])
    settled = (await close(client, where, opened.json()["id"])).json()
    bill_id = settled["bill_id"]
    # The parent owes it: it is among their bills and uses their credit until paid.
    mine = (await client.get("/v1/bills", headers=parent.headers)).json()["bills"]
    assert [b["id"] for b in mine] == [bill_id]
    family = (await client.get("/v1/family/bills", headers=parent.headers)).json()["bills"]
    [seen] = family
    assert seen["bill"]["id"] == bill_id and seen["on_family_credit"] is True
    parent_me = (await client.get("/v1/residents/me", headers=parent.headers)).json()
    assert seen["patient"] == {"masked_name": "王*明"}
    assert seen["payer"] == {"masked_name": parent_me["masked_name"]}
    invoice = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=parent.headers)).json()[
        "invoice"
    ]
    assert invoice["patient"] == {"masked_name": "王*明"}
    assert invoice["payer"] == {"masked_name": parent_me["masked_name"]}
    row = await Invoice.get(bill_id=bill_id)
    assert (row.subject_id, row.payer_subject_id) == (child_id, parent.subject_id)
    # The ledger says who owes: the child's share moved to the parent in one transfer.
    assert await LedgerTransfer.filter(key=f"family:{bill_id}").count() == 1
    assert (await Bill.get(id=bill_id)).subject_id == parent.subject_id
    await check_books()


async def test_a_child_without_a_guardian_on_credit_is_refused(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    parent = await resident(client, ctx)  # not enrolled
    child_id = await guard(client, parent, valid_id_number())
    refused = await child_visit(client, where, parent, child_id)
    body = assert_problem(refused, 402, "credit_unavailable")
    assert body["reason"] == "not_enrolled"


async def test_the_other_parent_repays_a_declined_bill_and_frees_the_credit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _, parent, child_id, number, settled = await treated_child(
        client, ctx, payment_method="pm_sandbox_declined"
    )
    assert settled["status"] == "payment_pending"
    bill_id = settled["bill_id"]
    other = await resident(client, ctx)  # guards the same child, has no credit account
    assert await guard(client, other, number) == child_id
    stranger = await patient(client, ctx)
    pay = f"/v1/family/bills/{bill_id}/pay"
    refused = await client.post(pay, json={}, headers=stranger.headers)
    assert_problem(refused, 404, "not_found")
    no_method = await client.post(pay, json={}, headers=other.headers)
    assert_problem(no_method, 404, "not_enrolled")
    declined = await client.post(
        f"/v1/family/bills/{bill_id}/pay",
        json={"payment_method": "pm_sandbox_insufficient"},
        headers=other.headers,
    )
    assert_problem(declined, 402, "payment_declined")
    repaid = await client.post(
        f"/v1/family/bills/{bill_id}/pay",
        json={"payment_method": "pm_sandbox_ok"},
        headers=other.headers,
    )
    assert repaid.status_code == 200, repaid.text
    assert repaid.json()["bill"]["status"] == "paid"
    assert repaid.json()["bill"]["outstanding_fen"] == 0
    credit = (await client.get("/v1/credit/me", headers=parent.headers)).json()
    assert credit["unpaid_bills"] == [] and credit["available_fen"] == credit["limit_fen"]
    # The other parent sees the child's bill and its invoice too.
    listed = (await client.get("/v1/family/bills", headers=other.headers)).json()["bills"]
    assert [b["bill"]["id"] for b in listed] == [bill_id]
    invoice = await client.get(f"/v1/bills/{bill_id}/invoice", headers=other.headers)
    assert invoice.status_code == 200, invoice.text
    await check_books()


async def test_a_relative_repaying_an_overdue_bill_reinstates_the_payer_at_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where, parent, child_id, number, settled = await treated_child(
        client, ctx, payment_method="pm_sandbox_declined"
    )
    clock.advance(timedelta(days=10, seconds=1))
    await tasks.run_collections(ctx)
    assert (await Bill.get(id=settled["bill_id"])).status == "overdue"
    parent = await relogged(client, ctx, parent)
    where = await refreshed(client, where)
    assert (await client.get("/v1/credit/me", headers=parent.headers)).json()[
        "status"
    ] == "suspended"
    suspended = await child_visit(client, where, parent, child_id)
    assert_problem(suspended, 402, "credit_unavailable")
    grandparent = await patient(client, ctx)  # enrolled: repays with their own method
    await guard(client, grandparent, number)
    repaid = await client.post(
        f"/v1/family/bills/{settled['bill_id']}/pay", headers=grandparent.headers
    )
    assert repaid.status_code == 200, repaid.text
    assert (await client.get("/v1/credit/me", headers=parent.headers)).json()["status"] == "active"
    reopened = await child_visit(client, where, parent, child_id)
    # The child has two guardians with credit now: the first (oldest guardianship) pays.
    assert reopened.status_code == 201, reopened.text
    parent_credit = (await client.get("/v1/credit/me", headers=parent.headers)).json()
    assert [e["id"] for e in parent_credit["open_encounters"]] == [reopened.json()["id"]]
    await check_books()


async def test_refunding_a_childs_overdue_bill_reinstates_the_guardian(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    parent = await patient(client, ctx, payment_method="pm_sandbox_declined")
    child_id = await guard(client, parent, valid_id_number())
    opened = (await child_visit(client, where, parent, child_id)).json()
    await charge(client, where, opened["id"], [item(3_000, "C")], charge_id="c-1")
    await close(client, where, opened["id"])
    clock.advance(timedelta(days=10, seconds=1))
    await tasks.run_collections(ctx)
    parent = await relogged(client, ctx, parent)
    where = await refreshed(client, where)
    assert (await client.get("/v1/credit/me", headers=parent.headers)).json()[
        "status"
    ] == "suspended"
    refunded = await client.post(
        f"/v1/encounters/{opened['id']}/refunds",
        json={"refund_id": "r-1", "charge_id": "c-1", "amount_fen": 3_000},
        headers=where.headers,
    )
    assert refunded.status_code == 201, refunded.text
    assert (await client.get("/v1/credit/me", headers=parent.headers)).json()["status"] == "active"
    await check_books()
