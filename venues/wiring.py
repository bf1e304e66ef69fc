"""How the venues domain plugs into the application: routes, runtime, the no-show and
purge jobs, the `suishen purge` command and the demo venue."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from app.context import AppContext
from app.domain import Command, Domain, Job
from auth import service as auth_service
from venues import service
from venues.routes import routes

DEMO_SLOT_HOURS = range(9, 17)  # local opening hours of the demo venue, one slot per hour


async def startup(ctx: AppContext) -> None:
    ctx.extensions[service.NAME] = service.build_runtime(ctx)


async def seed_demo(ctx: AppContext, existing: dict[str, Any]) -> dict[str, Any]:
    venue = await service.create_venue(
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
    operator = await auth_service.create_client(ctx, "operator", venue.id, actor="seed-demo")
    gates = []
    for name, direction in (("East entrance", "in"), ("East exit", "out")):
        gate = await service.register_gate(
            ctx, venue.id, name=name, direction=direction, actor="seed-demo"
        )
        gates.append(
            {
                "id": gate.gate.id,
                "name": name,
                "direction": direction,
                "client_id": gate.gate.client_id,
                "client_secret": gate.client_secret,
            }
        )
    rules = service.runtime(ctx).rules
    day_start, _ = rules.day_bounds(rules.local_day(ctx.clock.now()))
    for hour in DEMO_SLOT_HOURS:
        starts = day_start + timedelta(hours=hour)
        if starts + timedelta(hours=1) <= ctx.clock.now():
            continue
        await service.create_slot(
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


async def purge_job(ctx: AppContext) -> int:
    return await service.purge(ctx)


async def no_show_job(ctx: AppContext) -> int:
    return await service.count_no_shows(ctx)


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


async def _purge_command(ctx: AppContext, args: argparse.Namespace) -> int:
    removed = await service.purge(ctx)
    days = service.runtime(ctx).rules.retention_days
    if args.json:
        print(json.dumps({"removed": removed, "retention_days": days}))
    else:
        print(f"purged {removed} record(s) older than {days} days")
    return 0


DOMAIN = Domain(
    name="venues",
    routes=routes,
    startup=startup,
    jobs=[
        Job("venues-no-shows", 60, no_show_job),
        Job("venues-purge", 3600, purge_job),
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
