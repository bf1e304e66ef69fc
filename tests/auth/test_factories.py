"""The shared factories work end to end (other domains' tests depend on them)."""

from __future__ import annotations

from datetime import date

import httpx

from app.context import AppContext
from auth.identity import parse_id_number
from tests.factories import add_dependent, machine, resident, valid_id_number


def test_valid_id_number_passes_the_checks() -> None:
    number = valid_id_number(date(1985, 2, 28), region="440305")
    parsed = parse_id_number(number, date(2026, 1, 1))
    assert parsed is not None and parsed.birth_date == date(1985, 2, 28)
    assert number.startswith("440305")


async def test_resident_factory_logs_in_and_binds_identity(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    me = await client.get("/v1/residents/me", headers=someone.headers)
    assert me.status_code == 200
    assert me.json()["subject_id"] == someone.subject_id is not None
    assert me.json()["masked_name"] == "张*明"


async def test_resident_without_identity_has_no_subject(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, identity=False)
    assert someone.subject_id is None


async def test_two_residents_get_different_phones_and_subjects(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    a = await resident(client, ctx)
    b = await resident(client, ctx)
    assert a.phone != b.phone and a.subject_id != b.subject_id


async def test_add_dependent_returns_a_subject_the_guardian_lists(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    parent = await resident(client, ctx)
    dependent_id = await add_dependent(client, parent, name="张小红", birth=date(2018, 1, 2))
    listed = await client.get("/v1/residents/me/dependents", headers=parent.headers)
    assert [d["dependent_id"] for d in listed.json()["dependents"]] == [dependent_id]


async def test_machine_factory_gets_a_scoped_token(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", tenant_id="ven_1")
    assert set(gate.scope.split()) == {"gates:scan", "codes:verify"}
    assert gate.token.count(".") == 2
