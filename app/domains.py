"""The domains this application is made of, in dependency order."""

from __future__ import annotations

import importlib

from app.domain import Domain

DOMAIN_MODULES = (
    "app.wiring",
    "auth.wiring",
    "codes.wiring",
    "venues.wiring",
    "payments.wiring",
    "app.pages",
)


def load_domains() -> list[Domain]:
    return [importlib.import_module(name).DOMAIN for name in DOMAIN_MODULES]
