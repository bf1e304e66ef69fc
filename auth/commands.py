"""`suishen clients create --kind K [--tenant ID] --json`: how the first admin exists."""

from __future__ import annotations

import argparse
import json

from app.context import AppContext
from app.errors import Problem
from auth import scopes as sc
from auth.clients import create_client


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"])
    parser.add_argument("--kind", required=True, choices=[kind.value for kind in sc.CLIENT_KINDS])
    parser.add_argument("--tenant", help="venue id (gate, operator) or hospital id (hospital)")
    parser.add_argument("--location", help="where a kiosk stands (printed on its cards)")
    parser.add_argument("--json", action="store_true", help="print JSON (the only format)")


async def run_clients(ctx: AppContext, args: argparse.Namespace) -> int:
    try:
        creds = await create_client(
            ctx, args.kind, args.tenant, actor="cli", location=args.location
        )
    except Problem as exc:
        print(f"suishen: {exc.code}: {exc.detail}")
        return 2
    print(
        json.dumps(
            {
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "scope": creds.scope,
                "kind": creds.kind,
                "tenant_id": creds.tenant_id,
                "location": creds.location,
            }
        )
    )
    return 0
