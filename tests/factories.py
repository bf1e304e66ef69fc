"""Factories and checks every domain's tests build on: valid ID numbers, residents logged
in through the real OTP flow (and again with fresh tokens), dependents, machine clients
with tokens, residents' codes, and the one way to assert a problem response."""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import httpx

from app.context import AppContext
from auth.api import create_client
from auth.config import AuthRuntime
from auth.identity import check_digit
from auth.sms import SandboxSms

# Unique per process and per call, so parallel test runs and many residents in one
# test never share a phone (and never hit the per-phone OTP limit).
_PHONE_SEQ = itertools.count(random.Random(os.getpid()).randrange(0, 50_000_000))
_ID_SEQ = itertools.count(random.Random(os.getpid() + 1).randrange(0, 1_000))


def unique_phone() -> str:
    n = next(_PHONE_SEQ) % 100_000_000
    return f"+86139{n:08d}"


def valid_id_number(birth: date | None = None, region: str = "310101") -> str:
    """An 18-character resident ID number with a correct ISO 7064 MOD 11-2 check digit."""
    born = birth or date(1990, 5, 17)
    sequence = next(_ID_SEQ) % 1000
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_digit(first17)


@dataclass(frozen=True)
class Resident:
    token: str
    refresh_token: str
    phone: str
    account_id: str
    subject_id: str | None
    id_number: str | None
    name: str | None

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an application/problem+json answer with this status and code, its
    type, title and detail present and its request id set; returns the body, so a test
    can go on to check the problem's extra fields (`errors`, `retry_after`, ...)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status, body
    assert {"type", "title", "detail"} <= body.keys(), body
    assert response.headers["x-request-id"]
    return body


def sandbox(ctx: AppContext) -> SandboxSms:
    sms = ctx.runtime(AuthRuntime).sms
    assert isinstance(sms, SandboxSms), "tests run with SMS_BACKEND=sandbox"
    return sms


async def login(client: httpx.AsyncClient, ctx: AppContext, phone: str) -> dict[str, str]:
    """OTP flow over HTTP: request a code, read it from the sandbox SMS, log in."""
    sent = await client.post("/v1/auth/otp", json={"phone": phone})
    assert sent.status_code == 200, sent.text
    code = sandbox(ctx).last_code(phone)
    assert code is not None
    response = await client.post("/v1/auth/login", json={"phone": phone, "otp": code})
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def resident(
    client: httpx.AsyncClient,
    ctx: AppContext,
    *,
    phone: str | None = None,
    identity: bool = True,
    name: str = "张三明",
    birth: date | None = None,
) -> Resident:
    """A logged-in resident, with real-name identity bound unless `identity=False`."""
    phone = phone or unique_phone()
    tokens = await login(client, ctx, phone)
    headers = bearer(tokens["access_token"])
    id_number = None
    if identity:
        id_number = valid_id_number(birth)
        bound = await client.put(
            "/v1/residents/me/identity",
            json={"name": name, "id_number": id_number},
            headers=headers,
        )
        assert bound.status_code == 200, bound.text
    me = await client.get("/v1/residents/me", headers=headers)
    assert me.status_code == 200, me.text
    profile = me.json()
    return Resident(
        token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        phone=phone,
        account_id=profile["account_id"],
        subject_id=profile["subject_id"],
        id_number=id_number,
        name=name if identity else None,
    )


async def add_dependent(
    client: httpx.AsyncClient,
    resident: Resident,
    *,
    name: str = "张小明",
    birth: date | None = None,
    relation: str = "child",
) -> str:
    """Adds a dependent to `resident`; returns the dependent id (their subject id)."""
    response = await client.post(
        "/v1/residents/me/dependents",
        json={
            "name": name,
            "id_number": valid_id_number(birth or date(2016, 3, 9)),
            "relation": relation,
        },
        headers=resident.headers,
    )
    assert response.status_code == 201, response.text
    dependent_id: str = response.json()["dependent_id"]
    return dependent_id


async def relogin(client: httpx.AsyncClient, person: Resident) -> Resident:
    """The same resident with fresh tokens (after the test clock moved past their expiry)."""
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": person.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    return replace(person, token=tokens["access_token"], refresh_token=tokens["refresh_token"])


async def code_body(
    client: httpx.AsyncClient, who: Resident, *, dependent_id: str | None = None
) -> dict[str, Any]:
    """GET /v1/codes/me (the dependent's code when `dependent_id` is given), asserted 200:
    the whole answer (`code`, `status`, `issued_at`, `expires_at`, `refresh_after`)."""
    params = {"dependent_id": dependent_id} if dependent_id is not None else {}
    response = await client.get("/v1/codes/me", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def code_of(
    client: httpx.AsyncClient, who: Resident, *, dependent_id: str | None = None
) -> str:
    """The code string `who` is shown now (their dependent's with `dependent_id`)."""
    code: str = (await code_body(client, who, dependent_id=dependent_id))["code"]
    return code


@dataclass(frozen=True)
class Machine:
    client_id: str
    client_secret: str
    kind: str
    tenant_id: str | None
    scope: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def machine(
    client: httpx.AsyncClient,
    ctx: AppContext,
    kind: str,
    tenant_id: str | None = None,
    *,
    location: str | None = None,
) -> Machine:
    """A machine client of `kind` (created through auth.api.create_client; a kiosk names
    its `location`) holding an access token from the client-credentials grant."""
    creds = await create_client(ctx, kind, tenant_id, actor="tests", location=location)
    response = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Machine(
        creds.client_id, creds.client_secret, kind, tenant_id, body["scope"], body["access_token"]
    )


def decode_qr(png: bytes) -> str:
    """The text of the QR code in a PNG ('' when none is found)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None, "not an image"
    # The ArUco-based detector: the classic one misses ~1% of clean, valid symbols.
    text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    return str(text)


def pdf_text(content: bytes) -> str:
    """The text of every page of a PDF, as a reader extracts it."""
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)
