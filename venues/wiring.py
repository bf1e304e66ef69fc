"""How the venues domain plugs into the application: routes, runtime, the no-show and
purge jobs, the `suishen purge` command and the demo venue."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from app.context import AppContext
from app.domain import Command, Domain, Job
from auth.api import create_client
from venues import gate_routes
from venues.bookings import create_slot
from venues.catalogue import create_venue, register_gate
from venues.config import VenuesRuntime
from venues.routes import routes
from venues.states import GateDirection
from venues.tasks import count_no_shows, purge

DEMO_SLOT_HOURS = range(9, 17)  # local opening hours of the demo venue, one slot per hour


async def startup(ctx: AppContext) -> None:
    ctx.provide(VenuesRuntime.build(ctx.settings))


async def seed_demo(ctx: AppContext, existing: dict[str, Any]) -> dict[str, Any]:
    venue = await create_venue(
        ctx,
        name="闵行区博物馆 (demo)",
        kind="museum",
        district="闵行区",
        address="上海市闵行区新镇路 1 号",
        opening_hours={d: "09:00-17:00" for d in ("tue", "wed", "thu", "fri", "sat", "sun")},
        capacity=300,
        policy={"allowed_statuses": ["green"], "reservation_required": False,
                "anti_passback": True, "reentry_allowed": True, "min_age": None},
    )  # fmt: skip
    operator = await create_client(ctx, "operator", venue.id, actor="seed-demo")
    gates = []
    for name, direction in (("East entrance", GateDirection.IN), ("East exit", GateDirection.OUT)):
        gate = await register_gate(ctx, venue.id, name=name, direction=direction, actor="seed-demo")
        gates.append(
            {
                "id": gate.gate.id,
                "name": name,
                "direction": direction.value,
                "client_id": gate.gate.client_id,
                "client_secret": gate.client_secret,
            }
        )
    rules = ctx.runtime(VenuesRuntime).rules
    day_start, _ = rules.day_bounds(rules.local_day(ctx.clock.now()))
    for hour in DEMO_SLOT_HOURS:
        starts = day_start + timedelta(hours=hour)
        if starts + timedelta(hours=1) <= ctx.clock.now():
            continue
        await create_slot(
            ctx, venue.id, starts_at=starts, ends_at=starts + timedelta(hours=1),
            capacity=50, walk_in=10,
        )  # fmt: skip
    return {
        "venue": {
            "id": venue.id,
            "operator": {"client_id": operator.client_id, "client_secret": operator.client_secret},
            "gates": gates,
        }
    }


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


async def _purge_command(ctx: AppContext, args: argparse.Namespace) -> int:
    removed = await purge(ctx)
    days = ctx.runtime(VenuesRuntime).rules.retention_days
    if args.json:
        print(json.dumps({"removed": removed, "retention_days": days}))
    else:
        print(f"purged {removed} record(s) older than {days} days")
    return 0


DOMAIN = Domain(
    name="venues",
    routes=[*routes, *gate_routes.routes],
    startup=startup,
    jobs=[
        Job("venues-no-shows", 60, count_no_shows),
        Job("venues-purge", 3600, purge),
    ],
    seed_demo=seed_demo,
    commands=[
        Command(
            "purge",
            "delete venue entries, scans and visits past the retention period "
            "(SUISHEN_VENUES_RETENTION_DAYS, default 28), keeping daily counts",
            _purge_arguments,
            _purge_command,
        )
    ],
)
