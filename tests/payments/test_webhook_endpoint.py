"""Webhook endpoint rules that depend on the environment."""

from __future__ import annotations

import dataclasses

import pytest

from app.context import AppContext
from app.errors import ValidationFailed
from auth.api import Principal
from auth.principal import PrincipalKind
from payments import webhooks

HIS = Principal(kind=PrincipalKind.HOSPITAL, id="cli_x", scopes=frozenset(), tenant_id="hosp_x")


async def test_production_refuses_plain_http_webhooks(ctx: AppContext) -> None:
    production = dataclasses.replace(ctx, settings=ctx.settings.with_(app_env="production"))
    with pytest.raises(ValidationFailed):
        await webhooks.set_endpoint(production, HIS, "http://his.example/h", rotate_secret=False)
    endpoint, secret = await webhooks.set_endpoint(
        production, HIS, "https://his.example/h", rotate_secret=False
    )
    assert endpoint.url == "https://his.example/h" and secret.startswith("whsec_")
