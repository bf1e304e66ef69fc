"""Hospitals: creating one with its machine client, and which hospital a client acts for."""

from __future__ import annotations

from dataclasses import dataclass

from app.context import AppContext
from app.errors import NotFound
from auth.api import ClientCredentials, Principal, create_client
from payments.models import Hospital
from payments.store import new_id


@dataclass(frozen=True)
class RegisteredHospital:
    hospital: Hospital
    credentials: ClientCredentials  # the client's secret, shown this once


async def create_hospital(
    ctx: AppContext, name: str, *, actor: Principal | str
) -> RegisteredHospital:
    """A new hospital and the machine client its information system will use."""
    hospital = await Hospital.create(id=new_id("hosp"), name=name, created_at=ctx.clock.now())
    credentials = await create_client(ctx, "hospital", hospital.id, actor=actor)
    return RegisteredHospital(hospital, credentials)


def hospital_of(principal: Principal) -> str:
    """The hospital a client is bound to; 404 for a client bound to none."""
    if principal.tenant_id is None:
        raise NotFound("this client is not bound to a hospital")
    return principal.tenant_id
