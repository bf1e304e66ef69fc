"""Factories of the payments tests: hospitals with their client, enrolled patients, codes,
encounters and charges, all built through the HTTP API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from app.context import AppContext
from payments.service import PaymentsRuntime, runtime
from tests.factories import Resident, machine, resident

_SEQ = itertools.count(1)


@dataclass(frozen=True)
class Hospital:
    id: str
    headers: dict[str, str]


async def hospital(client: httpx.AsyncClient, ctx: AppContext, name: str = "中山医院") -> Hospital:
    admin = await machine(client, ctx, "admin")
    created = await client.post("/v1/hospitals", json={"name": name}, headers=admin.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    token = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": body["client"]["client_id"],
            "client_secret": body["client"]["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    return Hospital(body["id"], {"Authorization": f"Bearer {token.json()['access_token']}"})


async def patient(
    client: httpx.AsyncClient,
    ctx: AppContext,
    *,
    payment_method: str = "pm_sandbox_ok",
    insured: bool = True,
    deductible_met_fen: int = 20_000,
) -> Resident:
    """An enrolled resident; by default the annual deductible is already met, so splits
    are easy to read (70 % of eligible spending)."""
    person = await resident(client, ctx)
    enrolled = await client.post(
        "/v1/credit/enroll",
        json={
            "payment_method": payment_method,
            "insurance": {"insured": insured, "deductible_met_fen": deductible_met_fen},
        },
        headers=person.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    return person


async def code_of(client: httpx.AsyncClient, person: Resident) -> str:
    response = await client.get("/v1/codes/me", headers=person.headers)
    assert response.status_code == 200, response.text
    code: str = response.json()["code"]
    return code


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
    return runtime(ctx)
