export default {
  pair_title: "Pair this gate", pair_hint: "Enter the pairing code from the operator", pair_button: "Pair", paired_bad: "Pairing code invalid, used or expired",
  scan_hint: "Scan (scanner or camera)", admit: "ADMIT", deny: "DENY", online: "online", offline: "offline",
  bundle_age: "bundle {m} min old", bundle_none: "no bundle", bundle_expired: "bundle expired: cannot decide offline",
  queue: "to upload {n}", occupancy: "inside {o} / {c}", dir_in: "In", dir_out: "Out", annul: "Annul last admit",
  annulled: "annulled", synced: "uploaded {n} offline scans", conflicts: "Conflicts (check by hand)",
  status: { green: "green", yellow: "yellow", red: "red" },
  reasons: {
    ok: "valid", code_malformed: "unreadable code", signature_invalid: "forged code", unknown_key: "unknown key",
    code_expired: "code expired", code_not_yet_valid: "code not yet valid", code_revoked: "code revoked", code_replayed: "code already used",
    status_changed: "status changed", status_not_allowed: "colour not allowed", under_min_age: "under minimum age",
    reservation_required: "reservation required", already_inside: "already inside", reentry_not_allowed: "no re-entry today", venue_full: "venue full",
  },
};
