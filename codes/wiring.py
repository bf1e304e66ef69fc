"""How the codes domain plugs into the application."""

from __future__ import annotations

from app.domain import Domain

DOMAIN = Domain(name="codes")
