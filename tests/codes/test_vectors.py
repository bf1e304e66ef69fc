"""Every published test vector (tests/vectors/*.json) verifies as it says."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from codes import codec, verifier
from codes.verifier import REASONS

VECTORS = sorted((Path(__file__).resolve().parent.parent / "vectors").glob("*.json"))
KINDS = {
    "identity": codec.TYPE_IDENTITY,
    "place": codec.TYPE_PLACE,
    "printed": codec.TYPE_PRINTED,
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def run(vector: dict[str, Any]) -> verifier.Result:
    return verifier.verify(
        vector["code"],
        verifier.keys_from_jwks(vector["jwks"]),
        frozenset(vector["revoked"]),
        datetime.fromisoformat(vector["now"]),
        timedelta(seconds=vector["skew_s"]),
        kind=KINDS[vector["kind"]],
    )


def rfc3339(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def test_the_vectors_cover_a_valid_code_and_every_failure_reason() -> None:
    reasons = {load(p)["expected"]["reason"] for p in VECTORS}
    replayed = [p for p in VECTORS if "presentations" in load(p)]
    assert reasons | {"code_replayed"} == set(REASONS)
    assert replayed, "code_replayed is covered by a vector with presentations"
    assert len(VECTORS) >= 15


def test_printed_vectors_cover_validity_revocation_expiry_and_the_key_window() -> None:
    printed = {load(p)["expected"]["reason"] for p in VECTORS if load(p)["kind"] == "printed"}
    assert {"ok", "code_expired", "code_revoked", "unknown_key", "code_malformed"} <= printed
    valid = load(next(p for p in VECTORS if p.stem == "valid-printed"))
    result = run(valid)
    # No colour that could go stale, and a 92-byte payload: 142 characters.
    assert result.status is None and result.kind == "printed"
    assert len(valid["code"]) == 142


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_verifies_as_published(path: Path) -> None:
    vector = load(path)
    result = run(vector)
    expected = vector["expected"]
    assert (result.valid, result.reason) == (expected["valid"], expected["reason"])
    if "type" in expected:
        assert result.kind == expected["type"]
    if "status" in expected:
        assert result.status == expected["status"]
    if "issued_at" in expected:
        assert rfc3339(result.issued_at) == expected["issued_at"]
        assert rfc3339(result.expires_at) == expected["expires_at"]
        assert result.code_id == expected["code_id"]
    if "venue_id" in expected:
        assert result.venue_id == expected["venue_id"]
    if "daily_pseudonym" in expected:
        gate_keys = {int(day): bytes.fromhex(k) for day, k in vector["gate_keys"].items()}
        assert verifier.daily_pseudonym(result, gate_keys) == expected["daily_pseudonym"]


@pytest.mark.parametrize(
    "path", [p for p in VECTORS if "presentations" in load(p)], ids=lambda p: p.stem
)
def test_replay_vector_follows_the_replay_rule(path: Path) -> None:
    vector = load(path)
    memory = verifier.ReplayMemory()
    now = datetime.fromisoformat(vector["now"])
    for step in vector["presentations"]:
        decided = memory.present(run(vector), step["verifier"], now)
        assert decided.reason == step["reason"]
