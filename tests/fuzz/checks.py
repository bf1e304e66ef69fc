"""Schemathesis checks of our own, loaded by the fuzz test through SCHEMATHESIS_HOOKS.

`valid_request_accepted` is stricter than schemathesis' `positive_data_acceptance` where it
matters and looser where it must be: a request the schema calls valid may be refused for
the state of the world (no credit, slot full, an ID number whose check digit is wrong: 402,
409, 422 with a domain code), but never for its form. A schema-valid request answered with
one of the form codes below means the schema promised more than the server accepts.
(`name_invalid` is not among them: a person's name is stated in prose, see auth/schemas.py.)
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

FORM_CODES = frozenset(
    {
        "body_malformed",
        "validation_failed",
        "unsupported_media_type",
        "phone_invalid",
        "idempotency_key_required",
    }
)


# Field error types of rules a JSON Schema cannot state, described in the schema's prose:
# a time that must lie after now, one entry per subject in a batch (codes/status.py).
STATE_RULES = frozenset({"in_the_past", "duplicate"})


def _only_rules_no_schema_states(response: Any) -> bool:
    errors = json.loads(response.content).get("errors") or []
    return bool(errors) and all(e.get("type") in STATE_RULES for e in errors)


@schemathesis.check
def valid_request_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 415, 422):
        return None
    try:
        code = json.loads(response.content).get("code")
    except (ValueError, AttributeError):
        code = None
    if code == "validation_failed" and _only_rules_no_schema_states(response):
        return None
    if code in FORM_CODES:
        raise AssertionError(
            f"a request the schema calls valid was refused as {code}: "
            f"{response.content.decode(errors='replace')[:600]}"
        )
    return None
