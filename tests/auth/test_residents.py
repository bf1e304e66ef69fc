"""Real-name identity binding, the masked profile, and what other domains ask of auth."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from auth.config import AuthRuntime
from auth.errors import IdentityRequired
from auth.models import Account, AuditEvent, Subject
from auth.principal import Principal
from auth.residents import subject_for_request, subject_profile
from auth.sessions import authenticate
from tests.factories import add_dependent, assert_problem, machine, resident, valid_id_number


async def bind(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, id_number: str
) -> httpx.Response:
    return await client.put(
        "/v1/residents/me/identity", json={"name": name, "id_number": id_number}, headers=headers
    )


async def test_profile_shows_only_masked_values_and_derived_facts(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    someone = await resident(client, ctx, name="李四光", birth=date(1960, 1, 1))
    assert someone.id_number is not None
    body = (await client.get("/v1/residents/me", headers=someone.headers)).json()
    assert body["identity_bound"] is True
    assert body["masked_name"] == "李*光"
    assert body["masked_id_number"] == someone.id_number[:4] + "*" * 10 + someone.id_number[-4:]
    assert body["birth_year"] == 1960
    assert body["age_group"] == ("senior" if clock.now().year >= 2020 else "adult")
    assert body["subject_id"].startswith("sub_")
    text = str(body)
    assert "李四光" not in text and someone.id_number not in text and someone.phone[3:] not in text


async def test_subject_id_is_random_not_derived_from_the_person(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    assert someone.subject_id and someone.id_number
    assert someone.id_number not in someone.subject_id
    assert someone.phone[3:] not in someone.subject_id


async def test_name_and_id_number_are_encrypted_at_rest(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, name="王小波")
    row = await Subject.get(id=someone.subject_id)
    stored = " ".join(str(v) for v in row.__dict__.values())
    assert someone.id_number and someone.id_number not in stored
    assert "王小波" not in stored and "小波" not in stored
    account = await Account.get(id=someone.account_id)
    assert someone.phone[3:] not in " ".join(str(v) for v in account.__dict__.values())
    cipher = ctx.runtime(AuthRuntime).cipher
    assert cipher.decrypt(row.id_number_enc, field="id_number", row=row.id) == someone.id_number
    assert cipher.decrypt(row.name_enc, field="name", row=row.id) == "王小波"


async def test_ciphertext_moved_to_another_row_does_not_decrypt(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    a = await resident(client, ctx)
    b = await resident(client, ctx)
    row_a = await Subject.get(id=a.subject_id)
    cipher = ctx.runtime(AuthRuntime).cipher
    with pytest.raises(Exception):  # noqa: B017 (cryptography's InvalidTag)
        cipher.decrypt(row_a.id_number_enc, field="id_number", row=str(b.subject_id))


@pytest.mark.parametrize(
    "id_number",
    ["310101199001011235", "990101199001011234", "310101209901011234", "31010119900230123X",
     "123", "31010119900101123Y"],
)  # fmt: skip
async def test_implausible_id_number_is_422_id_number_invalid(
    client: httpx.AsyncClient, ctx: AppContext, id_number: str
) -> None:
    someone = await resident(client, ctx, identity=False)
    if id_number == "310101199001011235":
        id_number = valid_id_number(date(1990, 1, 1))
        id_number = id_number[:17] + ("0" if id_number[17] != "0" else "1")
    response = await bind(client, someone.headers, "张三明", id_number)
    assert_problem(response, 422, "id_number_invalid")


@pytest.mark.parametrize("name", ["张", "张三3", "<b>张三</b>", "x" * 31])
async def test_implausible_name_is_422_name_invalid(
    client: httpx.AsyncClient, ctx: AppContext, name: str
) -> None:
    someone = await resident(client, ctx, identity=False)
    response = await bind(client, someone.headers, name, valid_id_number())
    assert_problem(response, 422, "name_invalid")


async def test_one_id_number_belongs_to_one_account(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    first = await resident(client, ctx)
    assert first.id_number
    second = await resident(client, ctx, identity=False)
    response = await bind(client, second.headers, "张三明", first.id_number)
    assert_problem(response, 409, "identity_taken")


async def test_concurrent_binding_of_one_id_number_lets_one_account_have_it(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    people = [await resident(client, ctx, identity=False) for _ in range(6)]
    number = valid_id_number()
    responses = await asyncio.gather(*(bind(client, p.headers, "张三明", number) for p in people))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "identity_taken")


async def test_binding_the_same_identity_again_is_harmless_another_is_refused(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx)
    assert someone.id_number
    again = await bind(client, someone.headers, "张三明", someone.id_number)
    assert again.status_code == 200 and again.json()["subject_id"] == someone.subject_id
    other = await bind(client, someone.headers, "张三明", valid_id_number(date(1991, 1, 1)))
    assert_problem(other, 409, "identity_already_bound")
    wrong_name = await bind(client, someone.headers, "李四光", someone.id_number)
    assert_problem(wrong_name, 409, "identity_mismatch")


async def test_identity_binding_is_audited_without_the_values(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, name="赵六一")
    event = await AuditEvent.get(action="identity_bound")
    assert event.actor == someone.account_id and event.target == someone.subject_id
    assert event.request_id
    dumped = str(event.__dict__)
    assert "赵六一" not in dumped and str(someone.id_number) not in dumped


async def test_residents_routes_refuse_machine_tokens(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    gate = await machine(client, ctx, "gate", tenant_id="ven_a")
    assert_problem(await client.get("/v1/residents/me", headers=gate.headers), 403, "forbidden")
    response = await bind(client, gate.headers, "张三明", valid_id_number())
    assert_problem(response, 403, "forbidden")


# -- the entry points other domains call ------------------------------------------------


async def principal_of(client: httpx.AsyncClient, ctx: AppContext, token: str) -> Principal:
    return await authenticate(ctx, token)


async def test_subject_for_request_is_own_subject_or_a_guarded_dependent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    parent = await resident(client, ctx)
    child = await add_dependent(client, parent, name="张小明", birth=date(2017, 6, 1))
    stranger = await resident(client, ctx)
    principal = await principal_of(client, ctx, parent.token)
    assert await subject_for_request(principal, None) == parent.subject_id
    assert await subject_for_request(principal, child) == child
    with pytest.raises(Exception) as caught:
        await subject_for_request(principal, stranger.subject_id)
    assert getattr(caught.value, "status", None) == 404


async def test_subject_for_request_without_identity_is_identity_required(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, identity=False)
    principal = await principal_of(client, ctx, someone.token)
    with pytest.raises(IdentityRequired):
        await subject_for_request(principal, None)


async def test_token_from_before_binding_learns_the_subject(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, identity=False)
    response = await bind(client, someone.headers, "张三明", valid_id_number())
    principal = await principal_of(client, ctx, someone.token)
    assert principal.subject_id == response.json()["subject_id"]


async def test_subject_profile_is_masked_and_knows_dependents(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    parent = await resident(client, ctx, name="张三明", birth=date(1980, 3, 3))
    child = await add_dependent(client, parent, name="张小红", birth=date(2019, 9, 9))
    own = await subject_profile(str(parent.subject_id), now=clock.now())
    assert own is not None
    assert (own.masked_name, own.birth_date, own.age_group, own.is_dependent) == (
        "张*明",
        date(1980, 3, 3),
        "adult",
        False,
    )
    kid = await subject_profile(child, now=clock.now())
    assert kid is not None and kid.is_dependent and kid.age_group == "child"
    assert kid.masked_name == "张*红"
    assert await subject_profile("sub_nobody") is None


async def test_concurrent_bindings_of_one_account_leave_exactly_one_identity(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    someone = await resident(client, ctx, identity=False)
    numbers = [valid_id_number(date(1990 + i, 1, 1)) for i in range(5)]
    responses = await asyncio.gather(*(bind(client, someone.headers, "张三明", n) for n in numbers))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 4
    assert await Subject.filter(owner_account_id=someone.account_id).count() == 1
    assert await Subject.all().count() == 1
