"""Tortoise models of the venues domain.

Other domains' objects (residents' subjects, machine clients) are referred to by their
id strings, never by foreign keys. Entry, presence and visit rows are personal data and
are purged after the retention period; `DailyCount` keeps the numbers.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Venue(Model):
    id = fields.CharField(max_length=40, primary_key=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=40)
    district = fields.CharField(max_length=100, default="")
    address = fields.CharField(max_length=300, default="")
    opening_hours: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    capacity = fields.IntField()
    policy: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The live count, changed only by conditional updates (0 <= occupancy <= capacity).
    occupancy = fields.IntField(default=0)
    place_code = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "venues_venue"


class Gate(Model):
    id = fields.CharField(max_length=40, primary_key=True)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="gates", on_delete=fields.CASCADE
    )
    venue_id: str
    name = fields.CharField(max_length=100)
    direction = fields.CharField(max_length=4)  # in / out / both
    client_id = fields.CharField(max_length=80, unique=True)
    created_at = fields.DatetimeField()
    # When the gate last called the API (scan, annul, sync, bundle), written at most every
    # CONTACT_WRITE_S per gate (venues.catalogue.note_contact), and its last bundle fetch.
    last_contact_at = fields.DatetimeField(null=True)
    bundle_fetched_at = fields.DatetimeField(null=True)

    class Meta:
        table = "venues_gate"


class Slot(Model):
    id = fields.CharField(max_length=40, primary_key=True)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="slots", on_delete=fields.CASCADE
    )
    venue_id: str
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    capacity = fields.IntField()
    walk_in = fields.IntField(default=0)
    # Changed only by the conditional update that keeps booked <= capacity - walk_in.
    booked = fields.IntField(default=0)
    no_shows_counted = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "venues_slot"
        indexes = (("venue_id", "starts_at"),)


class Reservation(Model):
    id = fields.CharField(max_length=40, primary_key=True)
    slot: fields.ForeignKeyRelation[Slot] = fields.ForeignKeyField(
        "venues.Slot", related_name="reservations", on_delete=fields.CASCADE
    )
    slot_id: str
    venue_id = fields.CharField(max_length=40, db_index=True)
    day = fields.DateField()
    account_id = fields.CharField(max_length=80, db_index=True)
    booker_subject_id = fields.CharField(max_length=80, db_index=True)
    party_size = fields.IntField()
    status = fields.CharField(max_length=16, default="booked")  # booked/cancelled/no_show
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "venues_reservation"


class Seat(Model):
    """One person of a booked party. The unique key allows one booking per person per
    venue per day, and cancelling deletes the seats so the people may book again."""

    id = fields.BigIntField(primary_key=True)
    reservation: fields.ForeignKeyRelation[Reservation] = fields.ForeignKeyField(
        "venues.Reservation", related_name="seats", on_delete=fields.CASCADE
    )
    reservation_id: str
    venue_id = fields.CharField(max_length=40)
    day = fields.DateField()
    subject_id = fields.CharField(max_length=80, db_index=True)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()

    class Meta:
        table = "venues_seat"
        unique_together = (("venue_id", "day", "subject_id"),)


class NoShow(Model):
    id = fields.BigIntField(primary_key=True)
    subject_id = fields.CharField(max_length=80, db_index=True)
    venue_id = fields.CharField(max_length=40)
    reservation_id = fields.CharField(max_length=40, unique=True)
    at = fields.DatetimeField()

    class Meta:
        table = "venues_no_show"


class Suspension(Model):
    subject_id = fields.CharField(max_length=80, primary_key=True)
    until = fields.DatetimeField()

    class Meta:
        table = "venues_suspension"


class Entry(Model):
    """One gate scan (entry or exit, admitted or denied), online or synced from offline."""

    id = fields.BigIntField(primary_key=True)
    venue_id = fields.CharField(max_length=40)
    gate_id = fields.CharField(max_length=40)
    scan_id = fields.CharField(max_length=80)
    # SHA-256 of the scan body: same scan_id + other body is refused, not replayed.
    body_hash = fields.CharField(max_length=64)
    direction = fields.CharField(max_length=4)
    decision = fields.CharField(max_length=8)
    reason = fields.CharField(max_length=40)
    subject_id = fields.CharField(max_length=80, null=True, db_index=True)
    code_id = fields.CharField(max_length=80, null=True, db_index=True)
    reservation_id = fields.CharField(max_length=40, null=True)
    counted = fields.BooleanField(default=False)  # changed occupancy (undone on annul)
    response: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    offline = fields.BooleanField(default=False)
    # code / printed / id_card (venues.states.Credential): with the gate, time and subject,
    # the audit trail of ID-card scans (the number itself is never stored).
    credential = fields.CharField(max_length=8, default="code")
    scanned_at = fields.DatetimeField()
    recorded_at = fields.DatetimeField()
    annulled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "venues_entry"
        unique_together = (("gate_id", "scan_id"),)
        indexes = (("venue_id", "scanned_at"),)


class Admission(Model):
    """The one admission a code made at a venue (online or synced): the entry that admitted
    it. The primary key refuses a second admission of the code atomically, whatever the
    policy (that scan is answered as a repeat); annulling the admission deletes the row and
    frees the code. A long-lived credential (printed code, ID card) admits once per visit:
    its key names the person's visit and the person's exit deletes it."""

    # "<venue_id>/<code_id>" for a dynamic code, "<venue_id>/visit/<subject_id>" for a visit
    key = fields.CharField(max_length=128, primary_key=True)
    venue_id = fields.CharField(max_length=40)
    gate_id = fields.CharField(max_length=40)
    scan_id = fields.CharField(max_length=80)
    admitted_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "venues_admission"


class Presence(Model):
    """Whether a person is inside a venue now (anti-passback, occupancy) and when they last
    entered and left. Occupancy is the number of rows inside: a row goes inside with +1 and
    outside with -1, in the same transaction. Keyed by the subject for online and synced
    scans alike (a synced code's subject comes from `codes.api.holder_of`)."""

    id = fields.BigIntField(primary_key=True)
    venue_id = fields.CharField(max_length=40)
    subject_id = fields.CharField(max_length=80)
    inside = fields.BooleanField(default=False)
    entered_at = fields.DatetimeField(null=True)
    exited_at = fields.DatetimeField(null=True)

    class Meta:
        table = "venues_presence"
        unique_together = (("venue_id", "subject_id"),)


class Visit(Model):
    """A check-in by scanning the venue's place code."""

    id = fields.BigIntField(primary_key=True)
    venue_id = fields.CharField(max_length=40, db_index=True)
    subject_id = fields.CharField(max_length=80, db_index=True)
    status = fields.CharField(max_length=8)
    checked_in_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "venues_visit"


class DailyCount(Model):
    """Per venue and local day, what remains of purged entries and visits."""

    id = fields.BigIntField(primary_key=True)
    venue_id = fields.CharField(max_length=40)
    day = fields.DateField()
    admits = fields.IntField(default=0)
    denies = fields.IntField(default=0)
    exits = fields.IntField(default=0)
    checkins = fields.IntField(default=0)

    class Meta:
        table = "venues_daily_count"
        unique_together = (("venue_id", "day"),)
