"""The offline gate: decides scans from a signed bundle when the network is gone (no I/O).

    gate = OfflineGate.load(bundle_jws, bundle_keys_jwks, gate_id, now)
    scan = gate.decide(code, "in", now)      # -> OfflineScan (decision, reason)
    ... later, online: POST /v1/gates/sync {"scans": [s.as_json() for s in gate.pending]}

It runs `codes.verifier.verify` against the bundle's code keys and revoked code ids, keeps
the replay rule locally, matches reservations by the HMAC of the holder's daily pseudonym,
tracks who is inside (by that same hash) and a local occupancy, then applies the same
`venues.policy` order as the server, and the server's counting rules: a code admits once
(presented again, it answers its admission with `repeat_of` and is not counted), an exit
counts only for someone this gate saw enter. Age cannot be known offline: a venue with a
minimum age refuses offline entries (`under_min_age`).

Printed codes (离线码, docs/code-format.md section 9) carry no colour and no pseudonym: an
offline gate admits one only where the venue's policy has `printed_codes_offline`, judged
by the bundle's revocations alone (no colour check), and refuses it otherwise
(`printed_offline_not_allowed`). Its holder is the card's id (the same card every visit).
As on the server, a card's admission stands for one visit: presented again while its holder
is inside it answers that admission (`repeat_of`); after an exit it admits afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import jwt

from codes.api import (
    GATE_KINDS,
    ReplayMemory,
    Result,
    TrustedKey,
    keys_from_jwks,
    offline_pseudonym,
    verify,
)
from venues import policy as pol
from venues.states import Direction, ScanDecision

PRINTED = "printed"
# A printed code at an offline gate of a venue that keeps printed codes online-only.
PRINTED_OFFLINE_NOT_ALLOWED = "printed_offline_not_allowed"
# The colour of a printed code offline: unknown, and not checked where the venue allows them.
UNCHECKED = "unchecked"


class BundleInvalid(ValueError):
    """The bundle's signature does not verify, or it has expired."""


@dataclass(frozen=True)
class OfflineScan:
    """One scan a gate decided offline: queued on the gate, uploaded to POST /v1/gates/sync."""

    scan_id: str
    code: str
    direction: Direction
    scanned_at: datetime
    decision: ScanDecision
    reason: str
    # The earlier scan whose admission this one repeats (the same code presented again).
    repeat_of: str | None = None

    def as_json(self) -> dict[str, str]:
        body = {
            "scan_id": self.scan_id,
            "code": self.code,
            "direction": self.direction.value,
            "scanned_at": self.scanned_at.isoformat(),
            "decision": self.decision.value,
            "reason": self.reason,
        }
        if self.repeat_of is not None:
            body["repeat_of"] = self.repeat_of
        return body


def reservation_hash(salt: bytes, pseudonym_hex: str) -> str:
    """How a bundle lists a reservation: HMAC of the holder's daily code pseudonym under
    the bundle's salt, so the bundle names nobody. The server and the gate both use this."""
    return hmac.new(salt, bytes.fromhex(pseudonym_hex), hashlib.sha256).hexdigest()[:32]


def verify_bundle(token: str, bundle_keys: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The bundle's document, if a key of `bundle_keys` (GET /v1/gates/bundle/keys) signed
    it and it has not expired."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        jwk = next(k for k in bundle_keys.get("keys", []) if k.get("kid") == kid)
        key = jwt.PyJWK(jwk, algorithm="ES256").key
        body = jwt.api_jws.PyJWS().decode(token, key=key, algorithms=["ES256"])
    except (StopIteration, jwt.PyJWTError) as exc:
        raise BundleInvalid(f"bundle signature does not verify: {exc}") from None
    document: dict[str, Any] = json.loads(body)
    if datetime.fromisoformat(document["expires_at"]) <= now:
        raise BundleInvalid("bundle expired; fetch a new one")
    return document


@dataclass
class OfflineGate:
    document: dict[str, Any]
    gate_id: str
    keys: dict[bytes, TrustedKey]
    gate_keys: dict[int, bytes]
    revoked: frozenset[str]
    reservations: dict[str, list[pol.SlotWindow]]
    replay: ReplayMemory = field(default_factory=ReplayMemory)
    inside: set[str] = field(default_factory=set)
    exited: dict[str, datetime] = field(default_factory=dict)
    occupancy: int = 0
    pending: list[OfflineScan] = field(default_factory=list)
    # code id -> the scan that admitted it: a code admits once, as on the server.
    admitted: dict[str, OfflineScan] = field(default_factory=dict)

    @classmethod
    def load(
        cls, token: str, bundle_keys: Mapping[str, Any], gate_id: str, now: datetime
    ) -> OfflineGate:
        doc = verify_bundle(token, bundle_keys, now)
        reservations: dict[str, list[pol.SlotWindow]] = {}
        for item in doc["reservations"]:
            window = pol.SlotWindow(
                datetime.fromisoformat(item["starts_at"]), datetime.fromisoformat(item["ends_at"])
            )
            reservations.setdefault(item["h"], []).append(window)
        return cls(
            document=doc,
            gate_id=gate_id,
            keys=keys_from_jwks(doc["code_keys"]),
            gate_keys={int(d): bytes.fromhex(k) for d, k in doc["gate_keys"].items()},
            revoked=frozenset(doc["revoked_code_ids"]),
            reservations=reservations,
            occupancy=int(doc["occupancy"]),
        )

    @property
    def policy(self) -> pol.VenuePolicy:
        return pol.VenuePolicy.from_json(self.document["policy"])

    def _holder(self, result: Result) -> str | None:
        """Who presented the code, as the bundle lists reservations: the hash of the day's
        pseudonym (identity code) or of the card's id (printed code, the same every visit)."""
        alias = (
            result.code_id if result.kind == PRINTED else offline_pseudonym(result, self.gate_keys)
        )
        if alias is None:
            return None
        return reservation_hash(bytes.fromhex(self.document["reservation_salt"]), alias)

    def decide(
        self, code: str, direction: str, now: datetime, scan_id: str | None = None
    ) -> OfflineScan:
        """Decide one scan locally and queue it for POST /v1/gates/sync."""
        move = Direction(direction)
        sid = scan_id or f"off-{uuid.uuid4().hex}"
        result = verify(code, self.keys, self.revoked, now, kind=GATE_KINDS)
        result = self.replay.present(result, self.gate_id, now)
        holder = self._holder(result) if result.valid else None
        earlier = self.admitted.get(result.code_id or "") if result.valid else None
        if earlier is not None and result.kind == PRINTED and holder not in self.inside:
            # A card's admission stands for its visit only (the server's visit key): the
            # holder left since, so this is a new visit.
            earlier = None
        if move == Direction.IN and earlier is not None:
            # Presented again: the earlier admission's answer, nothing admitted or counted.
            repeat = OfflineScan(
                sid, code, move, now, earlier.decision, earlier.reason, earlier.scan_id
            )
            self.pending.append(repeat)
            return repeat
        decision = self._decision(result, holder, move, now)
        if decision.admitted and holder is not None:
            self._move(holder, move, now)
        scan = OfflineScan(sid, code, move, now, decision.decision, decision.reason)
        if decision.admitted and move == Direction.IN and result.code_id is not None:
            self.admitted[result.code_id] = scan
        self.pending.append(scan)
        return scan

    def _decision(
        self, result: Result, holder: str | None, move: Direction, now: datetime
    ) -> pol.Decision:
        early = timedelta(minutes=int(self.document["early_entry_minutes"]))
        policy = self.policy
        status: str | None = result.status
        if move == Direction.IN and result.valid and result.kind == PRINTED:
            if not policy.printed_codes_offline:
                return pol.deny(PRINTED_OFFLINE_NOT_ALLOWED)
            # No colour on the card and none known offline: where the venue allows printed
            # codes offline, the colour step is passed (the sync checks the rest later).
            policy = replace(policy, allowed_statuses=policy.allowed_statuses | {UNCHECKED})
            status = UNCHECKED
        facts = pol.ScanFacts(
            now=now,
            code_valid=result.valid,
            code_reason=result.reason,
            status=status,
            age=None,
            reservations=self.reservations.get(holder or "", []),
            inside=holder in self.inside,
            exited_today=holder in self.exited and self.exited[holder].date() == now.date(),
            occupancy=self.occupancy,
            capacity=int(self.document["capacity"]),
        )
        if move == Direction.OUT:
            return pol.decide_exit(facts)
        return pol.decide_entry(policy, facts, early)

    def _move(self, holder: str, move: Direction, now: datetime) -> None:
        """Local presence and occupancy, by the server's rules: an entry counts for someone
        not inside, an exit only for someone this gate saw inside (never for a stranger)."""
        if move == Direction.IN:
            if holder not in self.inside:
                self.inside.add(holder)
                self.occupancy += 1
            return
        if holder in self.inside:
            self.inside.discard(holder)
            self.occupancy = max(0, self.occupancy - 1)
        self.exited[holder] = now
