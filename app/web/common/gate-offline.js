// The offline gate in the browser: the code format (docs/code-format.md) verified with
// WebCrypto, the signed bundle (ES256 JWS) checked before it is trusted, and the decision
// taken exactly as venues/offline_gate.py and venues/policy.py take it (same reasons, same
// order). No I/O here: the console persists `state()` and the queue itself.

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const DIGITS = new Map([...B45].map((c, i) => [c, i]));
const STATUSES = ["green", "yellow", "red"];
export const SKEW_MS = 30_000;
// Code types (docs/code-format.md section 2); a gate accepts identity and printed codes.
export const TYPE_IDENTITY = 1, TYPE_PLACE = 2, TYPE_PRINTED = 3;
export const GATE_KINDS = [TYPE_IDENTITY, TYPE_PRINTED];
const KIND_NAMES = { 1: "identity", 2: "place", 3: "printed" };
// A printed code's lifetime field counts hours (section 9).
const PRINTED_LIFETIME_UNIT_S = 3600;
// venues.offline_gate: a printed code at a venue that keeps them online-only.
export const PRINTED_OFFLINE_NOT_ALLOWED = "printed_offline_not_allowed";
const UNCHECKED = "unchecked";
const subtle = globalThis.crypto.subtle;

class Malformed extends Error {}

export function b45decode(text) {
  const digits = [];
  for (const c of text) {
    const d = DIGITS.get(c);
    if (d === undefined) throw new Malformed("character outside the base45 alphabet");
    digits.push(d);
  }
  if (digits.length % 3 === 1) throw new Malformed("base45 length leaves a single character");
  const out = [];
  let i = 0;
  for (; i + 3 <= digits.length; i += 3) {
    const n = digits[i] + digits[i + 1] * 45 + digits[i + 2] * 2025;
    if (n > 0xffff) throw new Malformed("base45 group out of range");
    out.push(n >> 8, n & 0xff);
  }
  if (digits.length - i === 2) {
    const n = digits[i] + digits[i + 1] * 45;
    if (n > 0xff) throw new Malformed("base45 final group out of range");
    out.push(n);
  }
  return new Uint8Array(out);
}

export const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
export const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));

function b64urlDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

// Split a code string into payload fields and signature; throws Malformed. `kind` is the
// type the verifier expects, or an array of types (GATE_KINDS). `lifetime` is in seconds for
// every type (a printed code's wire field counts hours).
export function decode(code, kind = TYPE_IDENTITY) {
  if (typeof code !== "string" || !code.startsWith("SC1:")) throw new Malformed("missing the SC1: prefix");
  if (code.length > 256) throw new Malformed("code too long");
  const raw = b45decode(code.slice(4));
  if (raw.length <= 64 + 12 - 1) throw new Malformed("code too short");
  const signed = raw.slice(0, raw.length - 64);
  const signature = raw.slice(raw.length - 64);
  const view = new DataView(signed.buffer, signed.byteOffset, signed.byteLength);
  const version = signed[0], type = signed[1];
  if (version !== 1) throw new Malformed("unknown version");
  const keyId = hex(signed.slice(2, 6));
  const issuedAt = view.getUint32(6);
  let lifetime = view.getUint16(10);
  const body = signed.slice(12);
  let status = null, token = null;
  if (type === TYPE_IDENTITY) {
    if (body.length !== 17) throw new Malformed("identity payload has the wrong length");
    if (body[0] >= 3) throw new Malformed("unknown status");
    if (lifetime === 0) throw new Malformed("identity code with zero lifetime");
    status = STATUSES[body[0]];
    token = body.slice(1);
  } else if (type === TYPE_PLACE) {
    if (!(body.length > 0 && body.length <= 64)) throw new Malformed("place payload has the wrong length");
    try { new TextDecoder("utf-8", { fatal: true }).decode(body); } catch { throw new Malformed("venue id is not UTF-8"); }
  } else if (type === TYPE_PRINTED) {
    if (body.length !== 16) throw new Malformed("printed payload has the wrong length");
    if (lifetime === 0) throw new Malformed("printed code with zero lifetime");
    lifetime *= PRINTED_LIFETIME_UNIT_S;
    token = body;
  } else {
    throw new Malformed("unknown type");
  }
  const kindOk = Array.isArray(kind) ? kind.includes(type) : type === kind;
  return { type, keyId, issuedAt, lifetime, status, token, signed, signature, kindOk };
}

// Trusted keys from a JWK Set: code_kid (hex) -> {kid, key, notAfterMs}.
export async function importKeys(jwks) {
  const keys = new Map();
  for (const jwk of jwks.keys || []) {
    if (jwk.kty !== "EC" || jwk.crv !== "P-256") continue;
    const key = await subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
      { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    let codeKid = jwk.code_kid;
    if (!codeKid) {
      const point = new Uint8Array([4, ...b64urlDecode(jwk.x), ...b64urlDecode(jwk.y)]);
      codeKid = hex(new Uint8Array(await subtle.digest("SHA-256", point)).slice(0, 4));
    }
    keys.set(codeKid, { kid: String(jwk.kid), key, notAfterMs: jwk.exp != null ? jwk.exp * 1000 : null,
      printedNotAfterMs: jwk.printed_exp != null ? jwk.printed_exp * 1000 : null });
  }
  return keys;
}

function rsValid(signature) {
  // r or s equal to 0 never verify (WebCrypto refuses them too; checked for clarity).
  const zero = (a) => a.every((b) => b === 0);
  return !zero(signature.slice(0, 32)) && !zero(signature.slice(32));
}

// codes.verifier.verify: the first failing check is the reason.
export async function verify(code, keys, revoked, nowMs, skewMs = SKEW_MS, kind = TYPE_IDENTITY) {
  let p;
  try { p = decode(code, kind); } catch (e) {
    if (e instanceof Malformed || e instanceof TypeError || e instanceof RangeError) return { valid: false, reason: "code_malformed" };
    throw e;
  }
  const base = {
    type: p.type, kind: KIND_NAMES[p.type], status: p.status, issuedAt: p.issuedAt, lifetime: p.lifetime,
    codeId: p.token ? hex(p.token) : null, token: p.token,
  };
  if (!p.kindOk) return { ...base, valid: false, reason: "code_malformed" };
  const trusted = keys.get(p.keyId);
  if (!trusted) return { ...base, valid: false, reason: "unknown_key" };
  // A retired key's window: `printed_exp` for a printed code where the key has one, else `exp`.
  const notAfterMs = p.type === TYPE_PRINTED && trusted.printedNotAfterMs != null ? trusted.printedNotAfterMs : trusted.notAfterMs;
  if (notAfterMs != null && nowMs > notAfterMs) return { ...base, valid: false, reason: "unknown_key" };
  const ok = rsValid(p.signature) && await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, trusted.key, p.signature, p.signed);
  if (!ok) return { ...base, kid: trusted.kid, valid: false, reason: "signature_invalid" };
  const nowS = nowMs / 1000, skewS = skewMs / 1000;
  if (p.issuedAt > nowS + skewS) return { ...base, kid: trusted.kid, valid: false, reason: "code_not_yet_valid" };
  if (p.lifetime && nowS > p.issuedAt + p.lifetime + skewS) return { ...base, kid: trusted.kid, valid: false, reason: "code_expired" };
  if (base.codeId && revoked.has(base.codeId)) return { ...base, kid: trusted.kid, valid: false, reason: "code_revoked" };
  return { ...base, kid: trusted.kid, valid: true, reason: "ok" };
}

// One AES-256 block decrypted with WebCrypto's CBC (it has no ECB), exactly:
// C2 = E(C xor 0x10*16) from CBC-encrypting sixteen 0x10 bytes with iv = C; then
// CBC-decrypting C || C2 with iv = 0 gives D(C) followed by a valid padding block.
export async function aesDecryptBlock(keyBytes, block) {
  const key = await subtle.importKey("raw", keyBytes, "AES-CBC", false, ["encrypt", "decrypt"]);
  const pad = new Uint8Array(16).fill(16);
  const c2 = new Uint8Array(await subtle.encrypt({ name: "AES-CBC", iv: block }, key, pad)).slice(0, 16);
  const both = new Uint8Array(32);
  both.set(block, 0);
  both.set(c2, 16);
  return new Uint8Array(await subtle.decrypt({ name: "AES-CBC", iv: new Uint8Array(16) }, key, both));
}

export const dayOf = (issuedAt) => Math.floor((issuedAt + 28800) / 86400);

// codes.verifier.daily_pseudonym: hex, or null.
export async function dailyPseudonym(result, gateKeys) {
  // A printed code's id is random, not a sealed pseudonym: no gate key opens it.
  if (!result.valid || result.issuedAt == null || result.type !== TYPE_IDENTITY || !result.token) return null;
  const key = gateKeys[String(dayOf(result.issuedAt))];
  if (!key) return null;
  return hex((await aesDecryptBlock(unhex(key), result.token)).slice(0, 8));
}

export async function reservationHash(saltHex, pseudonymHex) {
  const key = await subtle.importKey("raw", unhex(saltHex), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hex(new Uint8Array(await subtle.sign("HMAC", key, unhex(pseudonymHex)))).slice(0, 32);
}

export class BundleInvalid extends Error {}

// venues.offline_gate.verify_bundle: the document, if a bundle key signed it and it is current.
export async function verifyBundle(token, bundleKeys, nowMs) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new BundleInvalid("bundle signature does not verify");
  let header;
  try { header = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[0]))); } catch { throw new BundleInvalid("bundle signature does not verify"); }
  const jwk = (bundleKeys.keys || []).find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== "ES256") throw new BundleInvalid("bundle signature does not verify");
  const key = await subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
    { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  const ok = await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, b64urlDecode(parts[2]),
    new TextEncoder().encode(`${parts[0]}.${parts[1]}`));
  if (!ok) throw new BundleInvalid("bundle signature does not verify");
  const doc = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[1])));
  if (Date.parse(doc.expires_at) <= nowMs) throw new BundleInvalid("bundle expired; fetch a new one");
  return doc;
}

const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// venues.policy.decide_entry / decide_exit.
export function decideEntry(policy, f, earlyMs) {
  if (!f.codeValid) return ["deny", f.codeReason];
  if (!(policy.allowed_statuses || ["green"]).includes(f.status)) return ["deny", "status_not_allowed"];
  if (policy.min_age != null && (f.age == null || f.age < policy.min_age)) return ["deny", "under_min_age"];
  if (policy.reservation_required && !f.reservations.some((w) => w.startsMs - earlyMs <= f.nowMs && f.nowMs < w.endsMs)) return ["deny", "reservation_required"];
  if ((policy.anti_passback ?? true) && f.inside) return ["deny", "already_inside"];
  if (!(policy.reentry_allowed ?? true) && f.exitedToday && !f.inside) return ["deny", "reentry_not_allowed"];
  if (f.occupancy >= f.capacity) return ["deny", "venue_full"];
  return ["admit", "ok"];
}

export function decideExit(f) {
  return f.codeValid ? ["admit", "ok"] : ["deny", f.codeReason];
}

// venues.offline_gate.OfflineGate; `saved` is an earlier `state()` (survives a reload).
export class OfflineGate {
  static async load(token, bundleKeys, gateId, nowMs, saved = null) {
    const doc = await verifyBundle(token, bundleKeys, nowMs);
    const gate = new OfflineGate();
    gate.document = doc;
    gate.gateId = gateId;
    gate.keys = await importKeys(doc.code_keys);
    gate.revoked = new Set(doc.revoked_code_ids);
    gate.reservations = new Map();
    for (const item of doc.reservations) {
      const list = gate.reservations.get(item.h) || [];
      list.push({ startsMs: Date.parse(item.starts_at), endsMs: Date.parse(item.ends_at) });
      gate.reservations.set(item.h, list);
    }
    const s = saved && saved.bundle_id === gate.bundleId ? saved : null;
    gate.seen = new Map(s ? s.seen : []);
    gate.inside = new Set(s ? s.inside : []);
    gate.exited = new Map(s ? s.exited : []);
    gate.admitted = new Map(s ? s.admitted : []);
    gate.occupancy = s ? s.occupancy : Number(doc.occupancy);
    return gate;
  }

  get bundleId() { return `${this.document.issued_at || ""}|${this.document.expires_at}`; }

  state() {
    return {
      bundle_id: this.bundleId, seen: [...this.seen], inside: [...this.inside],
      exited: [...this.exited], admitted: [...this.admitted], occupancy: this.occupancy,
    };
  }

  // codes.verifier.ReplayMemory.present
  present(result, nowMs) {
    // Printed codes are shown for months at many gates: the replay rule does not apply.
    if (!result.valid || !result.codeId || result.type === TYPE_PRINTED) return result;
    for (const [id, [, until]] of this.seen) if (until < nowMs) this.seen.delete(id);
    const seen = this.seen.get(result.codeId);
    if (!seen) {
      const until = result.lifetime ? (result.issuedAt + result.lifetime) * 1000 : nowMs;
      this.seen.set(result.codeId, [this.gateId, until + SKEW_MS]);
      return result;
    }
    if (seen[0] === this.gateId) return result;
    return { ...result, valid: false, reason: "code_replayed" };
  }

  // The day's pseudonym (identity code) or the card's id (printed code), hashed as the
  // bundle lists reservations.
  async holder(result) {
    const alias = result.type === TYPE_PRINTED ? result.codeId : await dailyPseudonym(result, this.document.gate_keys);
    return alias == null ? null : reservationHash(this.document.reservation_salt, alias);
  }

  async decide(code, direction, nowMs, scanId = null) {
    const sid = scanId || `off-${hex(crypto.getRandomValues(new Uint8Array(16)))}`;
    const scannedAt = new Date(nowMs).toISOString();
    let result = await verify(code, this.keys, this.revoked, nowMs, SKEW_MS, GATE_KINDS);
    result = this.present(result, nowMs);
    const holder = result.valid ? await this.holder(result) : null;
    let earlier = result.valid ? this.admitted.get(result.codeId || "") : undefined;
    // A card's admission stands for its visit only (the server's visit key): the holder
    // left since, so this is a new visit.
    if (earlier && result.type === TYPE_PRINTED && !this.inside.has(holder)) earlier = undefined;
    if (direction === "in" && earlier) {
      return { scan_id: sid, code, direction, scanned_at: scannedAt, decision: earlier.decision,
        reason: earlier.reason, repeat_of: earlier.scan_id, status: result.status, kind: result.kind };
    }
    let policy = this.document.policy;
    let status = result.status;
    if (direction === "in" && result.valid && result.type === TYPE_PRINTED) {
      if (!policy.printed_codes_offline) {
        return { scan_id: sid, code, direction, scanned_at: scannedAt, decision: "deny",
          reason: PRINTED_OFFLINE_NOT_ALLOWED, status: null, kind: result.kind };
      }
      // No colour on the card and none known offline: the colour step is passed.
      policy = { ...policy, allowed_statuses: [...(policy.allowed_statuses || ["green"]), UNCHECKED] };
      status = UNCHECKED;
    }
    const facts = {
      nowMs, codeValid: result.valid, codeReason: result.reason, status, age: null,
      reservations: this.reservations.get(holder || "") || [],
      inside: this.inside.has(holder),
      exitedToday: this.exited.has(holder) && utcDay(this.exited.get(holder)) === utcDay(nowMs),
      occupancy: this.occupancy, capacity: Number(this.document.capacity),
    };
    const [decision, reason] = direction === "out" ? decideExit(facts)
      : decideEntry(policy, facts, Number(this.document.early_entry_minutes) * 60_000);
    if (decision === "admit" && holder != null) this.move(holder, direction, nowMs);
    const scan = { scan_id: sid, code, direction, scanned_at: scannedAt, decision, reason, status: result.status, kind: result.kind };
    if (decision === "admit" && direction === "in" && result.codeId) this.admitted.set(result.codeId, { scan_id: sid, decision, reason });
    return scan;
  }


  move(holder, direction, nowMs) {
    if (direction === "in") {
      if (!this.inside.has(holder)) { this.inside.add(holder); this.occupancy += 1; }
      return;
    }
    if (this.inside.has(holder)) { this.inside.delete(holder); this.occupancy = Math.max(0, this.occupancy - 1); }
    this.exited.set(holder, nowMs);
  }
}
