"""What other domains may use of auth: the entry points `docs/contracts.md` lists.

Every import of auth from another domain goes through this module (tests/test_contracts.py
walks the imports and fails on one that reaches past it).
"""

from __future__ import annotations

from auth import scopes
from auth.audit import audit_machine_action
from auth.authz import require
from auth.clients import ClientCredentials, create_client, rotate_client
from auth.errors import IdentityRequired
from auth.kiosk import KioskInfo, audit_kiosk_action, kiosk_info
from auth.principal import Principal
from auth.residents import (
    SubjectProfile,
    dependents_of,
    guardians_of,
    subject_for_id_number,
    subject_for_request,
    subject_profile,
)
from auth.schemas import SubjectId

__all__ = [
    "ClientCredentials",
    "IdentityRequired",
    "KioskInfo",
    "Principal",
    "SubjectId",
    "SubjectProfile",
    "audit_kiosk_action",
    "audit_machine_action",
    "create_client",
    "dependents_of",
    "guardians_of",
    "kiosk_info",
    "require",
    "rotate_client",
    "scopes",
    "subject_for_id_number",
    "subject_for_request",
    "subject_profile",
]
