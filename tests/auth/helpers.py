"""Kiosk builders shared by the auth, codes and venues tests: a kiosk client with its
token, and a resident identified at it (ID card + OTP) holding the delegated token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from tests.factories import Machine, Resident, bearer, decode_qr, machine, sandbox

KIOSK_LOCATION = "闵行区江川路街道社区事务受理中心 24小时自助服务点"


async def kiosk(
    client: httpx.AsyncClient, ctx: AppContext, location: str = KIOSK_LOCATION
) -> Machine:
    """A kiosk client at `location` holding its client-credentials token."""
    return await machine(client, ctx, "kiosk", location=location)


@dataclass(frozen=True)
class KioskVisit:
    """A resident identified at a kiosk: the session and the token acting for them."""

    session_id: str
    token: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def identify(
    client: httpx.AsyncClient, at: Machine, person: Resident, *, name: str | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/kiosk/sessions",
        json={"name": name or person.name, "id_number": person.id_number},
        headers=at.headers,
    )


async def kiosk_visit(
    client: httpx.AsyncClient,
    ctx: AppContext,
    clock: FrozenClock,
    at: Machine,
    person: Resident,
) -> KioskVisit:
    """ID card read, OTP sent to the resident's phone and typed in at the kiosk. The clock
    moves a minute first: the resident's own login just used the phone's one SMS a minute."""
    clock.advance(seconds=61)
    started = await identify(client, at, person)
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    code = sandbox(ctx).last_code(person.phone)
    assert code is not None
    confirmed = await client.post(
        f"/v1/kiosk/sessions/{session_id}/confirm", json={"otp": code}, headers=at.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    return KioskVisit(session_id, body["access_token"], body)


def pdf_qr(content: bytes) -> str:
    """The text of the one QR code on a PDF's first page."""
    import io

    import pypdf

    [image] = pypdf.PdfReader(io.BytesIO(content)).pages[0].images
    png = io.BytesIO()
    image.image.save(png, format="PNG")  # type: ignore[union-attr]
    return decode_qr(png.getvalue())
