"""Dependents: identity first, at most 5, sharing between guardians, and consent when
the person has an account of their own."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest

from app.context import AppContext
from tests.factories import Resident, add_dependent, assert_problem, resident, valid_id_number


async def post_dependent(
    client: httpx.AsyncClient, guardian: Resident, **fields: Any
) -> httpx.Response:
    body = {"name": "张小明", "relation": "child", **fields}
    body.setdefault("id_number", valid_id_number(date(2015, 1, 1)))
    return await client.post("/v1/residents/me/dependents", json=body, headers=guardian.headers)


@pytest.mark.parametrize("relation", ["child", "parent", "spouse", "other"])
async def test_each_relation_is_accepted(
    client: httpx.AsyncClient, ctx: AppContext, relation: str
) -> None:
    guardian = await resident(client, ctx)
    response = await post_dependent(client, guardian, relation=relation)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["relation"] == relation and body["masked_name"] == "张*明"
    assert body["dependent_id"] == body["subject_id"] != guardian.subject_id


async def test_unknown_relation_is_422(client: httpx.AsyncClient, ctx: AppContext) -> None:
    guardian = await resident(client, ctx)
    response = await post_dependent(client, guardian, relation="neighbour")
    assert_problem(response, 422, "validation_failed")


async def test_dependents_need_the_guardians_identity_first(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx, identity=False)
    assert_problem(await post_dependent(client, guardian), 409, "identity_required")


async def test_dependent_id_number_and_name_are_validated(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx)
    bad_id = valid_id_number()[:17] + "Y"
    assert_problem(await post_dependent(client, guardian, id_number=bad_id), 422,
                   "id_number_invalid")  # fmt: skip
    assert_problem(await post_dependent(client, guardian, name="1"), 422, "name_invalid")


async def test_sixth_dependent_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    guardian = await resident(client, ctx)
    for _ in range(5):
        await add_dependent(client, guardian)
    assert_problem(await post_dependent(client, guardian), 409, "dependents_limit")
    listed = await client.get("/v1/residents/me/dependents", headers=guardian.headers)
    assert len(listed.json()["dependents"]) == 5


async def test_limit_of_five_holds_under_concurrent_additions(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx)
    responses = await asyncio.gather(*(post_dependent(client, guardian) for _ in range(9)))
    assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 4
    listed = await client.get("/v1/residents/me/dependents", headers=guardian.headers)
    assert len(listed.json()["dependents"]) == 5


async def test_own_id_number_cannot_be_a_dependent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx)
    response = await post_dependent(client, guardian, id_number=guardian.id_number)
    assert_problem(response, 422, "dependent_is_self")


async def test_same_dependent_twice_is_already_dependent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    guardian = await resident(client, ctx)
    number = valid_id_number(date(2014, 4, 4))
    assert (await post_dependent(client, guardian, id_number=number)).status_code == 201
    again = await post_dependent(client, guardian, id_number=number)
    assert_problem(again, 409, "already_dependent")


async def test_two_parents_share_a_child_with_the_same_subject(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mother = await resident(client, ctx, name="李娟娟")
    father = await resident(client, ctx, name="张三明")
    number = valid_id_number(date(2016, 6, 6))
    first = await post_dependent(client, mother, id_number=number)
    second = await post_dependent(client, father, id_number=number)
    assert second.status_code == 201
    assert first.json()["subject_id"] == second.json()["subject_id"]


async def test_sharing_needs_the_name_that_is_already_known(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    mother = await resident(client, ctx)
    stranger = await resident(client, ctx)
    number = valid_id_number(date(2016, 6, 6))
    await post_dependent(client, mother, id_number=number, name="张小明")
    response = await post_dependent(client, stranger, id_number=number, name="王大锤")
    assert_problem(response, 409, "identity_mismatch")


async def test_an_account_holder_cannot_be_claimed_without_consent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    elder = await resident(client, ctx, name="张老汉", birth=date(1950, 1, 1))
    stranger = await resident(client, ctx)
    response = await post_dependent(
        client, stranger, id_number=elder.id_number, name="张老汉", relation="parent"
    )
    assert_problem(response, 409, "consent_required")
    forged = await post_dependent(
        client, stranger, id_number=elder.id_number, name="张老汉", relation="parent",
        consent_code="ABCDEF123456",
    )  # fmt: skip
    assert_problem(forged, 409, "consent_invalid")


async def test_consent_code_lets_one_relative_add_the_holder_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    elder = await resident(client, ctx, name="张老汉", birth=date(1950, 1, 1))
    son = await resident(client, ctx)
    daughter = await resident(client, ctx)
    given = await client.post("/v1/residents/me/consents", headers=elder.headers)
    assert given.status_code == 201
    code = given.json()["consent_code"]
    fields = {"id_number": elder.id_number, "name": "张老汉", "relation": "parent"}
    added = await post_dependent(client, son, consent_code=code, **fields)
    assert added.status_code == 201, added.text
    assert added.json()["subject_id"] == elder.subject_id
    reused = await post_dependent(client, daughter, consent_code=code, **fields)
    assert_problem(reused, 409, "consent_invalid")


async def test_consent_code_of_one_person_does_not_unlock_another(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    elder = await resident(client, ctx, name="张老汉")
    other = await resident(client, ctx, name="李老太")
    relative = await resident(client, ctx)
    code = (await client.post("/v1/residents/me/consents", headers=other.headers)).json()
    response = await post_dependent(
        client, relative, id_number=elder.id_number, name="张老汉", relation="parent",
        consent_code=code["consent_code"],
    )  # fmt: skip
    assert_problem(response, 409, "consent_invalid")


async def test_dependent_who_later_gets_an_account_keeps_their_subject(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    parent = await resident(client, ctx)
    number = valid_id_number(date(2007, 2, 2))
    dependent_id = (await post_dependent(client, parent, id_number=number)).json()["subject_id"]
    grown_up = await resident(client, ctx, identity=False)
    bound = await client.put(
        "/v1/residents/me/identity",
        json={"name": "张小明", "id_number": number},
        headers=grown_up.headers,
    )
    assert bound.status_code == 200, bound.text
    assert bound.json()["subject_id"] == dependent_id
    # ... and from then on, adding them needs their consent.
    newcomer = await resident(client, ctx)
    response = await post_dependent(client, newcomer, id_number=number)
    assert_problem(response, 409, "consent_required")


async def test_consent_needs_an_identity(client: httpx.AsyncClient, ctx: AppContext) -> None:
    someone = await resident(client, ctx, identity=False)
    response = await client.post("/v1/residents/me/consents", headers=someone.headers)
    assert_problem(response, 409, "identity_required")


async def test_lookups_for_other_domains_find_people_by_id_number_and_family(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    from auth.api import dependents_of, guardians_of, subject_for_id_number

    parent = await resident(client, ctx)
    other_parent = await resident(client, ctx, name="李四")
    child_number = valid_id_number(date(2016, 5, 1))
    added = await post_dependent(client, parent, id_number=child_number)
    child = added.json()["dependent_id"]
    shared = await post_dependent(client, other_parent, id_number=child_number)
    assert shared.status_code == 201, shared.text
    assert parent.id_number is not None and parent.subject_id is not None
    assert await subject_for_id_number(ctx, parent.id_number) == parent.subject_id
    assert await subject_for_id_number(ctx, child_number.lower()) == child
    assert await subject_for_id_number(ctx, valid_id_number(date(1990, 2, 2))) is None
    assert await subject_for_id_number(ctx, "not a number") is None
    assert await dependents_of(parent.subject_id) == [child]
    assert await dependents_of(child) == []
    assert await guardians_of(child) == [parent.subject_id, other_parent.subject_id]
    assert await guardians_of(parent.subject_id) == []
