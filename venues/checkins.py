"""Check-ins: a resident scans a venue's printed place code and a visit is recorded."""

from __future__ import annotations

from dataclasses import dataclass

from app.context import AppContext
from auth.api import Principal, subject_for_request, subject_profile
from codes.api import current_status, verify_place_code
from venues.catalogue import get_venue
from venues.models import Venue, Visit


@dataclass(frozen=True)
class CheckIn:
    visit: Visit
    venue: Venue
    masked_name: str | None


async def check_in(
    ctx: AppContext, principal: Principal, place_code: str, dependent_id: str | None
) -> CheckIn:
    subject_id = await subject_for_request(principal, dependent_id)
    venue_id = verify_place_code(ctx, place_code)
    venue = await get_venue(venue_id)
    now = ctx.clock.now()
    status = await current_status(ctx, subject_id)
    profile = await subject_profile(subject_id, now=now)
    visit = await Visit.create(
        venue_id=venue.id, subject_id=subject_id, status=status, checked_in_at=now
    )
    return CheckIn(visit, venue, profile.masked_name if profile is not None else None)
