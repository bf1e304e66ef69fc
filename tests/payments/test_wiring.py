"""How payments plugs in: demo seed, OpenAPI document, configuration."""

from __future__ import annotations

import httpx
import pytest

from app.context import AppContext
from app.settings import SettingsError
from payments.config import PaymentsConfig
from payments.wiring import seed_demo


async def test_demo_seed_creates_a_hospital_whose_client_works(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    seeded = await seed_demo(ctx, {})
    creds = seeded["hospital"]["client"]
    token = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    assert "encounters:write" in token.json()["scope"]
    assert seeded["hospital"]["id"].startswith("hosp_")


async def test_openapi_documents_every_payments_endpoint(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/v1/hospitals", "post"),
        ("/v1/hospitals/me/webhook", "put"),
        ("/v1/hospitals/me/statements", "get"),
        ("/v1/credit/enroll", "post"),
        ("/v1/credit/me", "get"),
        ("/v1/encounters", "post"),
        ("/v1/encounters/{encounter_id}/charges", "post"),
        ("/v1/encounters/{encounter_id}/close", "post"),
        ("/v1/encounters/{encounter_id}/quote", "get"),
        ("/v1/hospitals/me/settlement", "put"),
        ("/v1/encounters/{encounter_id}/refunds", "post"),
        ("/v1/bills", "get"),
        ("/v1/bills/{bill_id}", "get"),
        ("/v1/bills/{bill_id}/pay", "post"),
    ]:
        assert method in paths[path], path
    charge_errors = paths["/v1/encounters/{encounter_id}/charges"]["post"]["responses"]
    assert "credit_limit_exceeded" in charge_errors["402"]["description"]


def test_configuration_reads_its_knobs_and_refuses_nonsense() -> None:
    config = PaymentsConfig.from_extra(
        {"SUISHEN_CREDIT_LIMIT_FEN": "5000", "SUISHEN_COLLECTION_RETRY_HOURS": "2,4"}
    )
    assert config.credit_limit_fen == 5000
    assert [d.total_seconds() for d in config.retry_schedule] == [7200, 14400]
    assert PaymentsConfig.from_extra({}).credit_limit_fen == 300_000
    with pytest.raises(SettingsError):
        PaymentsConfig.from_extra({"SUISHEN_CREDIT_LIMIT_FEN": "lots"})
    with pytest.raises(SettingsError):
        PaymentsConfig.from_extra({"SUISHEN_INSURANCE_BUREAU": "a friend"})
    with pytest.raises(SettingsError):
        PaymentsConfig.from_extra({"SUISHEN_LINE_CEILING_FEN": "-1"})


def test_orphaned_collections_are_looked_for_every_few_seconds() -> None:
    # With the collection lease (6 s), this bounds how long a crash delays a payment.
    from payments.collection import LEASE
    from payments.wiring import DOMAIN

    [job] = [j for j in DOMAIN.jobs if j.name == "payments-resume-collections"]
    assert job.every_s <= 5
    assert LEASE.total_seconds() + job.every_s <= 15
