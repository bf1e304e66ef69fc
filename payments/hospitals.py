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
    ctx: AppContext, name: str, *, actor: Principal | str, tier: int = 3
) -> RegisteredHospital:
    """A new hospital (of tier 1/2/3 = 一级/二级/三级) and the machine client its
    information system will use."""
    hospital = await Hospital.create(
        id=new_id("hosp"), name=name, tier=tier, created_at=ctx.clock.now()
    )
    credentials = await create_client(ctx, "hospital", hospital.id, actor=actor)
    return RegisteredHospital(hospital, credentials)


def hospital_of(principal: Principal) -> str:
    """The hospital a client is bound to; 404 for a client bound to none."""
    if principal.tenant_id is None:
        raise NotFound("this client is not bound to a hospital")
    return principal.tenant_id


async def set_settlement_timing(principal: Principal, *, mode: str, batch_hour: int) -> Hospital:
    """The client's hospital settles per encounter, or collects in a daily batch at
    `batch_hour` (local time)."""
    hospital = await Hospital.get_or_none(id=hospital_of(principal))
    if hospital is None:
        raise NotFound("no such hospital")
    hospital.settlement_mode, hospital.batch_hour = mode, batch_hour
    await hospital.save(update_fields=["settlement_mode", "batch_hour"])
    return hospital
