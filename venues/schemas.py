"""Request and response shapes of the venues endpoints, and the functions that build the
responses from the domain's objects."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from app import types as t
from auth.api import SubjectId
from venues.policy import MAX_COMPANIONS

Status = Literal["green", "yellow", "red"]
Direction = Literal["in", "out"]
GateDirection = Literal["in", "out", "both"]
Id = str  # ids in responses; requests use app.types' limited ones
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OpeningHours = Annotated[
    str,
    StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$"),
]
VenueKind = Literal["museum", "library", "theatre", "sports", "gallery", "other"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _green_only() -> list[Status]:
    return ["green"]


class PolicyIn(_In):
    allowed_statuses: list[Status] = Field(default_factory=_green_only, min_length=1)
    reservation_required: bool = False
    anti_passback: bool = True
    reentry_allowed: bool = True
    min_age: int | None = Field(default=None, ge=0, le=120)
    id_card_allowed: bool = Field(
        default=True, description="Gates of this venue may scan an ID card instead of a code"
    )
    printed_codes_offline: bool = Field(
        default=False,
        description="Offline gates may admit printed (long-lived) codes, judged by the "
        "bundle's revocations only (online gates always check their current status)",
    )


class PolicyOut(BaseModel):
    allowed_statuses: list[Status]
    reservation_required: bool
    anti_passback: bool
    reentry_allowed: bool
    min_age: int | None
    id_card_allowed: bool
    printed_codes_offline: bool


class VenueIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: VenueKind
    district: str = Field(default="", max_length=100)
    address: str = Field(default="", max_length=300)
    opening_hours: dict[Weekday, OpeningHours] = Field(
        default_factory=dict, description='Per weekday, e.g. {"tue": "09:00-17:00"}'
    )
    capacity: int = Field(gt=0, le=1_000_000)
    policy: PolicyIn = Field(default_factory=PolicyIn)


class VenuePatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    district: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=300)
    opening_hours: dict[Weekday, OpeningHours] | None = None
    capacity: int | None = Field(default=None, gt=0, le=1_000_000)
    policy: PolicyIn | None = None


class VenueOut(BaseModel):
    id: Id
    name: str
    kind: str
    district: str
    address: str
    opening_hours: dict[str, str]
    capacity: int
    occupancy: int
    policy: PolicyOut
    created_at: datetime
    updated_at: datetime


class VenueList(BaseModel):
    items: list[VenueOut]


class GateIn(_In):
    name: str = Field(min_length=1, max_length=100)
    direction: GateDirection = "both"


class GateOut(BaseModel):
    id: Id
    venue_id: Id
    name: str
    direction: GateDirection
    client_id: str
    client_secret: str = Field(description="Shown only in this response")
    scope: str


class SlotIn(_In):
    starts_at: t.Instant
    ends_at: t.Instant
    capacity: int = Field(gt=0, le=100_000)
    walk_in: int = Field(
        default=0, ge=0, le=100_000, description="Places kept back from online booking"
    )


class SlotOut(BaseModel):
    id: Id
    venue_id: Id
    starts_at: datetime
    ends_at: datetime
    capacity: int
    walk_in: int
    booked: int
    available: int = Field(description="Places still bookable online")


class BookingRulesOut(BaseModel):
    """The booking rules a client shows before a request fails."""

    max_party: int = Field(description="People in one booking: the booker and dependents")
    booking_opens_days: int = Field(description="Booking opens this many days before a slot")
    one_booking_per_day: bool = Field(
        default=True, description="Each person holds at most one booking per venue per day"
    )
    cancel_until_start: bool = Field(
        default=True, description="A booking can be cancelled until its slot starts"
    )


class SlotList(BaseModel):
    items: list[SlotOut]
    rules: BookingRulesOut | None = None


class SlotQuery(_In):
    day: t.Day | None = Field(default=None, description="Local day (YYYY-MM-DD)")


class ReservationIn(_In):
    slot_id: t.Id
    dependents: list[SubjectId] = Field(default_factory=list, max_length=20)


class ReservationOut(BaseModel):
    id: Id
    slot_id: Id
    venue_id: Id
    starts_at: datetime
    ends_at: datetime
    party_size: int
    status: Literal["booked", "cancelled", "no_show"]
    created_at: datetime
    cancelled_at: datetime | None


class MyReservationOut(ReservationOut):
    venue_name: str
    cancellable: bool = Field(description="Whether DELETE /v1/reservations/{id} would cancel it")


class MyReservationList(BaseModel):
    items: list[MyReservationOut]


# The number a gate's ID-card reader reads: 17 digits and a check character. A number that
# fails its check digit or names nobody here is refused as `id_card_unknown`, like any other.
IdCardNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")]


def _absent_by_default(schema: dict[str, Any]) -> None:
    # An omitted field is absent, not null: a `null` default would contradict the type.
    schema.pop("default", None)


class ScanIn(_In):
    scan_id: t.LongId
    # The limits sit on the string itself: on the union, pydantic would apply them to null.
    code: (
        Annotated[str, StringConstraints(min_length=1, max_length=1024)] | SkipJsonSchema[None]
    ) = Field(
        default=None,
        description="The scanned code (identity or printed); exactly one of code or id_card",
        json_schema_extra=_absent_by_default,
    )
    id_card: IdCardNumber | SkipJsonSchema[None] = Field(
        default=None,
        description="The 18-character ID number the gate's card reader read, instead of a code "
        "(where the venue's policy has id_card_allowed). Never stored or logged in clear",
        json_schema_extra=_absent_by_default,
    )
    direction: Direction
    scanned_at: t.Instant | None = None
    companions: (
        Literal["reservation"]
        | Annotated[list[SubjectId], Field(max_length=MAX_COMPANIONS)]
        | SkipJsonSchema[None]
    ) = Field(
        default=None,
        description='Who passes with the holder (同行人员): "reservation" for the dependents '
        "on the holder's reservation in force, or a list chosen at the gate of the holder's "
        "dependents, each named by the dependent_ref an earlier answer listed in `dependents` "
        "(or by its dependent_id). Omitted: the holder alone. One decision per person, each "
        "its own entry and count; an entry takes places for the whole party or for nobody "
        "(venue_full). "
        "More people than SUISHEN_VENUES_MAX_PARTY (holder included) -> 422 party_too_large",
        json_schema_extra=_absent_by_default,
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["code"]}, {"required": ["id_card"]}]},
    )

    @model_validator(mode="after")
    def _aware(self) -> ScanIn:
        if self.scanned_at is not None and self.scanned_at.tzinfo is None:
            raise ValueError("scanned_at needs a timezone (RFC 3339)")
        if (self.code is None) == (self.id_card is None):
            raise ValueError("send exactly one of code or id_card")
        return self


class Display(BaseModel):
    masked_name: str | None
    status: Status | None


class CompanionOut(BaseModel):
    scan_id: str = Field(
        description="The companion's own scan: the holder's scan_id + '#' + its place in the "
        "party (1, 2, ...); its entry record carries this id"
    )
    dependent_ref: str = Field(
        description="The companion's handle at this venue today (a keyed hash, not an id: "
        "different at another venue or on another day)"
    )
    decision: Literal["admit", "deny"]
    reason: str = Field(
        description="As for the holder; plus not_a_dependent for an id that is not one of the "
        "holder's dependents, and venue_full for everyone when the party did not fit"
    )
    display: Display
    repeat_of: str | None = Field(
        default=None, description="The earlier companion scan this one repeats (see repeat_of)"
    )


class DependentRefOut(BaseModel):
    dependent_ref: str = Field(description="Valid at this venue until the local day ends")
    masked_name: str | None


class ScanOut(BaseModel):
    scan_id: str
    decision: Literal["admit", "deny"]
    reason: str
    display: Display
    occupancy: int
    capacity: int
    direction: Direction
    scanned_at: datetime
    repeat_of: str | None = Field(
        default=None,
        description="Set when this code already admitted at this venue: the scan_id of that "
        "admission, whose decision and display this answer repeats. Nothing was admitted or "
        "counted again (the turnstile that turned for it need not turn again).",
    )
    credential: Literal["code", "printed", "id_card"] = Field(
        default="code",
        description="What identified the holder: a dynamic code, a printed (long-lived) code, "
        "or an ID card",
    )
    companions: list[CompanionOut] = Field(
        default_factory=list,
        description="One per companion asked for, in party order (empty for the holder alone)",
    )
    dependents: list[DependentRefOut] = Field(
        default_factory=list,
        description="The holder's dependents a gate may choose as companions (listed when the "
        "scan asked for companions): send their dependent_ref in `companions` with a new "
        "scan_id and the same code or ID card; the holder is then answered as a repeat",
    )


class AnnulOut(BaseModel):
    scan_id: str
    annulled_at: datetime
    occupancy: int


class BundleOut(BaseModel):
    bundle: str = Field(description="Compact ES256 JWS; verify with GET /v1/gates/bundle/keys")
    kid: str
    expires_at: datetime
    document: dict[str, Any] = Field(description="The signed payload, decoded for convenience")


class JwksOut(BaseModel):
    keys: list[dict[str, Any]]


class OfflineScanIn(_In):
    scan_id: t.LongId
    code: str = Field(min_length=1, max_length=1024)
    direction: Direction
    scanned_at: t.Instant
    decision: Literal["admit", "deny"]
    reason: str = Field(default="ok", max_length=40)
    repeat_of: t.LongId | None = Field(
        default=None, description="The gate's own scan this one repeated"
    )

    @model_validator(mode="after")
    def _aware(self) -> OfflineScanIn:
        if self.scanned_at.tzinfo is None:
            raise ValueError("scanned_at needs a timezone (RFC 3339)")
        return self


class SyncIn(_In):
    scans: list[OfflineScanIn] = Field(min_length=1, max_length=1000)
    gate_time: t.Instant | None = Field(
        default=None,
        description="The gate's clock when it uploads: scans later than it plus "
        "SUISHEN_VENUES_SCAN_SKEW_SECONDS are rejected (scanned_after_gate_time)",
    )

    @model_validator(mode="after")
    def _aware(self) -> SyncIn:
        if self.gate_time is not None and self.gate_time.tzinfo is None:
            raise ValueError("gate_time needs a timezone (RFC 3339)")
        return self


class SyncResult(BaseModel):
    scan_id: str
    outcome: Literal["recorded", "duplicate", "conflict", "rejected"] = Field(
        description="recorded: stored by this upload; conflict: stored by this upload, with "
        "conflicts for a human to judge; duplicate: stored before, nothing changed; "
        "rejected: not stored and never counted (see reason)"
    )
    conflicts: list[str]
    reason: str | None = Field(
        default=None,
        description="Why a rejected scan was refused: scan_id_reused, "
        "scanned_before_bundle_window, scanned_in_future, scanned_after_gate_time",
    )


class SyncOut(BaseModel):
    recorded: int = Field(
        description="Scans this upload stored (outcome recorded or conflict); "
        "recorded + duplicates + rejected is the number of scans uploaded"
    )
    duplicates: int = Field(description="Scans stored by an earlier upload (outcome duplicate)")
    rejected: int = Field(description="Scans refused, not stored (outcome rejected)")
    conflicts: list[SyncResult] = Field(description="The stored scans with at least one conflict")
    results: list[SyncResult] = Field(description="One per uploaded scan, in scan-time order")
    occupancy: int = Field(description="The venue's occupancy after this upload")


class PlaceCodeQuery(_In):
    format: Literal["json", "png", "svg"] | None = None
    size: Literal["screen", "poster"] = "screen"


class PlaceCodeOut(BaseModel):
    venue_id: Id
    name: str
    place_code: str


class CheckinIn(_In):
    place_code: str = Field(min_length=1, max_length=1024)
    dependent_id: SubjectId | None = None


class VenueBrief(BaseModel):
    id: Id
    name: str
    kind: str
    address: str


class CheckinOut(BaseModel):
    visit_id: int
    venue: VenueBrief
    display: Display
    checked_in_at: datetime


class OccupancyOut(BaseModel):
    venue_id: Id
    occupancy: int
    capacity: int
    available: int


class EntriesQuery(_In):
    gate_id: t.Id | None = None
    since: t.Instant | None = None
    until: t.Instant | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: t.Cursor | None = Field(default=None, description="next_cursor of the last page")


class VenuesQuery(_In):
    kind: VenueKind | None = None
    district: str | None = Field(default=None, min_length=1, max_length=100)


class EntryOut(BaseModel):
    id: int
    scan_id: str
    gate_id: str
    direction: Direction
    decision: Literal["admit", "deny"]
    reason: str
    masked_name: str | None
    status: Status | None
    offline: bool
    scanned_at: datetime
    recorded_at: datetime
    annulled_at: datetime | None


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: int | None


class VisitOut(BaseModel):
    kind: Literal["checkin", "entry"]
    venue_id: Id
    venue_name: str
    at: datetime


class VisitList(BaseModel):
    items: list[VisitOut]


class StatsQuery(_In):
    day: t.Day | None = Field(default=None, description="Venue-local day (YYYY-MM-DD); today")


class GateHourOut(BaseModel):
    gate_id: Id
    gate_name: str
    hour: int = Field(description="Venue-local hour, 0-23")
    entries: int = Field(description="Entries that counted (admitted, not annulled)")
    exits: int = Field(description="Exits that took someone off the occupancy")


class GateContactOut(BaseModel):
    id: Id
    name: str
    direction: GateDirection
    last_contact_at: datetime | None = Field(
        description="Last scan, annul, sync or bundle fetch (written at most every 30 s)"
    )
    bundle_fetched_at: datetime | None
    bundle_age_s: int | None = Field(description="Seconds since the last bundle fetch")


class SlotCountOut(BaseModel):
    id: Id
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int
    entered: int = Field(
        description="Entries with one of the slot's reservations, plus entries without a "
        "reservation scanned during the slot"
    )


class VenueStatsOut(BaseModel):
    venue_id: Id
    day: date
    occupancy: int
    capacity: int
    by_gate_hour: list[GateHourOut]
    gates: list[GateContactOut]
    slots: list[SlotCountOut]


class PairingOut(BaseModel):
    pairing_code: str = Field(description="One-time, single use; typed or scanned on the console")
    gate_id: Id
    expires_at: datetime
    qr_svg: str = Field(description="The pairing code as a QR symbol (SVG)")


class PairIn(_In):
    pairing_code: Annotated[str, StringConstraints(min_length=4, max_length=32)]


class PairedOut(BaseModel):
    gate_id: Id
    venue_id: Id
    name: str
    direction: GateDirection
    client_id: str
    client_secret: str = Field(description="Shown only in this response; the old one stops working")
    scope: str
