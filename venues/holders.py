"""Who a scan is about, as the presence rows key people: the subject of an online scan, and
for a synced offline scan the subject found by its code's daily pseudonym (the alias).

Codes lets venues open a synced code to its holder's daily pseudonym only (the way an
offline gate does), not to the subject. So every presence row remembers the alias of the
person's last scan at the venue, a synced scan is matched to a row by it, and someone only
offline gates have seen gets a row keyed `~<alias>`, which the person's next online scan
adopts (merges into their subject's row) before anything else happens to their presence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.context import AppContext
from codes.api import Result, daily_pseudonym, day_of, gate_token_keys, offline_pseudonym
from venues import store
from venues.models import Presence

ALIAS_PREFIX = "~"


@dataclass(frozen=True)
class Holder:
    """`key`: the presence row's subject_id; `alias`: the daily pseudonym of the scanned
    code; `adopt`: alias keys whose rows belong to this subject (online scans only)."""

    key: str
    alias: str | None
    adopt: tuple[str, ...] = ()


async def online_holder(ctx: AppContext, subject_id: str, issued_at: datetime | None) -> Holder:
    """The holder of a code verified online: its subject, and the aliases of the code's day
    and the day before (a visit that began offline before midnight)."""
    if issued_at is None:
        return Holder(subject_id, None)
    day = day_of(int(issued_at.timestamp()))
    alias = await daily_pseudonym(ctx, subject_id, day)
    before = await daily_pseudonym(ctx, subject_id, day - 1)
    return Holder(subject_id, alias, (ALIAS_PREFIX + alias, ALIAS_PREFIX + before))


async def synced_holder(ctx: AppContext, venue_id: str, result: Result) -> Holder | None:
    """The holder of a code an offline gate scanned: the row with its alias, else the alias
    itself. None for a code that did not verify at its scan time (no pseudonym to open)."""
    if not result.valid or result.issued_at is None:
        return None
    day = day_of(int(result.issued_at.timestamp()))
    keys = {d: bytes.fromhex(k) for d, k in gate_token_keys(ctx, [day]).items()}
    alias = offline_pseudonym(result, keys)
    if alias is None:
        return None
    row = await Presence.filter(venue_id=venue_id, alias=alias).order_by("-id").first()
    return Holder(row.subject_id if row is not None else ALIAS_PREFIX + alias, alias)


async def adopt(venue_id: str, holder: Holder) -> None:
    """Inside the scan's transaction: fold the rows offline gates made for this person into
    their subject's row, so their presence is one row (and they are counted once)."""
    if not holder.adopt:
        return
    for row in await Presence.filter(venue_id=venue_id, subject_id__in=holder.adopt):
        own = await Presence.get_or_none(venue_id=venue_id, subject_id=holder.key)
        if own is None:
            # The unique key refuses a concurrent twin; the scan runs again then.
            await Presence.filter(id=row.id, subject_id=row.subject_id).update(
                subject_id=holder.key
            )
            continue
        if not await Presence.filter(id=row.id).delete():
            continue  # a concurrent scan adopted it
        changes: dict[str, object] = {"exited_at": _latest(own.exited_at, row.exited_at)}
        if row.inside and own.inside:
            await store.bump_occupancy(venue_id, -1)  # one person was counted twice
        elif row.inside:
            changes.update(inside=True, entered_at=row.entered_at)
        await Presence.filter(id=own.id).update(**changes)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
