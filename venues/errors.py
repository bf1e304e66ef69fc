"""Problem codes the venues domain raises (beside the platform's in `app.errors`).

Problem
 ├── VenueNotFound            404 venue_not_found        no such venue (or not the caller's)
 ├── GateNotFound             404 gate_not_found         the token's gate is not registered
 ├── SlotNotFound             404 slot_not_found         no such slot at this venue
 ├── ReservationNotFound      404 reservation_not_found  no such reservation of the caller's
 ├── ScanNotFound             404 scan_not_found         no scan with this scan_id at this gate
 ├── SlotInvalid              422 slot_invalid           end not after start, walk-in over capacity
 ├── SlotInPast               422 slot_in_past           booking a slot that has ended
 ├── BookingNotOpen           422 booking_not_open       more than N days ahead of the slot
 ├── PartyTooLarge            422 party_too_large        over N people in a booking or gate party
 ├── ScanClockSkewed          422 clock_skewed           scanned_at too far from the server clock
 ├── DirectionNotSupported    422 direction_not_supported  an in-only gate scanned an exit (or back)
 ├── SlotFull                 409 slot_full              no bookable place left in the slot
 ├── AlreadyBooked            409 already_booked         someone in the party booked that day
 ├── CancellationClosed       409 cancellation_closed    the slot has started
 ├── AnnulWindowPassed        409 annul_window_passed    the admit is older than the annul window
 ├── ScanNotAnnullable        409 scan_not_annullable    only an admitted entry can be annulled
 └── BookingSuspended         403 booking_suspended      too many no-shows recently
"""

from __future__ import annotations

from app.errors import Problem


class VenueNotFound(Problem):
    """The venue does not exist, or the caller may not know it exists."""

    status, code, title = 404, "venue_not_found", "Venue not found"


class GateNotFound(Problem):
    """The gate token belongs to no registered gate."""

    status, code, title = 404, "gate_not_found", "Gate not found"


class SlotNotFound(Problem):
    """The slot does not exist (at this venue)."""

    status, code, title = 404, "slot_not_found", "Slot not found"


class ReservationNotFound(Problem):
    """No reservation with this id belongs to the caller."""

    status, code, title = 404, "reservation_not_found", "Reservation not found"


class ScanNotFound(Problem):
    """This gate recorded no scan with that scan_id."""

    status, code, title = 404, "scan_not_found", "Scan not found"


class SlotInvalid(Problem):
    """A slot must end after it starts and keep back no more walk-in places than it has."""

    status, code, title = 422, "slot_invalid", "Slot is not valid"


class SlotInPast(Problem):
    """The slot has already ended."""

    status, code, title = 422, "slot_in_past", "Slot is in the past"


class BookingNotOpen(Problem):
    """Booking for this slot has not opened yet."""

    status, code, title = 422, "booking_not_open", "Booking is not open yet"


class PartyTooLarge(Problem):
    """More people in one booking, or in one party at a gate, than the venue rules allow."""

    status, code, title = 422, "party_too_large", "Party too large"


class ScanClockSkewed(Problem):
    """The gate's `scanned_at` is too far from the server's clock to be trusted online."""

    status, code, title = 422, "clock_skewed", "Gate clock is skewed"


class DirectionNotSupported(Problem):
    """The gate is registered for the other direction only."""

    status, code, title = 422, "direction_not_supported", "Gate does not scan this direction"


class SlotFull(Problem):
    """No bookable place left in the slot for the whole party."""

    status, code, title = 409, "slot_full", "Slot is full"


class AlreadyBooked(Problem):
    """Someone in the party already holds a booking at this venue that day."""

    status, code, title = 409, "already_booked", "Already booked that day"


class CancellationClosed(Problem):
    """The slot has started; the booking can no longer be cancelled."""

    status, code, title = 409, "cancellation_closed", "Too late to cancel"


class AnnulWindowPassed(Problem):
    """The admit is older than the annul window."""

    status, code, title = 409, "annul_window_passed", "Too late to annul this scan"


class ScanNotAnnullable(Problem):
    """Only an admitted entry can be annulled."""

    status, code, title = 409, "scan_not_annullable", "This scan cannot be annulled"


class BookingSuspended(Problem):
    """Booking is suspended after repeated no-shows; `until` says when it resumes."""

    status, code, title = 403, "booking_suspended", "Booking suspended after no-shows"


class PairingCodeInvalid(Problem):
    """The pairing code is unknown, already used or expired: ask the operator for a new one."""

    status, code, title = 400, "pairing_code_invalid", "Pairing code invalid, used or expired"


class ScanContended(Problem):
    """Concurrent scans kept changing the venue under this one's decision (8 tries): nothing
    was recorded, and sending the same scan again (same scan_id) is safe."""

    status, code, title = 503, "scan_contended", "Too many concurrent scans, try again"
