// The gate console: pairing, a fresh client-credentials token, scans from a keyboard-wedge
// scanner (a focused field: code + Enter; an ID-card reader types the 18-character number +
// Enter into the same field, or staff type it in the ID-card field), online decisions by
// POST /v1/gates/scan with the party on the holder's booking (companions) and, without
// network, the signed bundle decided in the browser (common/gate-offline.js); offline scans
// queue in IndexedDB and go to POST /v1/gates/sync when the network returns.
import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";
import { OfflineGate, BundleInvalid } from "../common/gate-offline.js";

const LANG = "suishen.gate.lang";
const LANGS = { "zh-CN": zh, en };
// The language: the one chosen on this device (the switch in the bar), else the browser's.
let lang = localStorage.getItem(LANG) || ((navigator.language || "zh-CN").toLowerCase().startsWith("en") ? "en" : "zh-CN");
let T = LANGS[lang] || zh;
const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (_, k) => v[k]);
const $ = (sel) => document.querySelector(sel);
const CREDS = "suishen.gate.credentials";
const ELDER = "suishen.gate.elder";
// An 18-character resident ID number: 17 digits and a check character (GB 11643).
const ID_CARD = /^[0-9]{17}[0-9Xx]$/;
// How long a credential is kept (in memory only) to let chosen companions through after it.
const PARTY_MS = 60_000;
const state = { token: null, tokenUntil: 0, online: navigator.onLine, gate: null, offline: null,
  bundleAt: null, bundleExpires: null, direction: "in", lastAdmit: null, queue: 0, last: null, notice: "" };

// -- IndexedDB: the queue of offline scans and the offline gate's state --------------------
let dbp = null;
function db() {
  dbp ??= new Promise((resolve, reject) => {
    const open = indexedDB.open("suishen-gate", 1);
    open.onupgradeneeded = () => { open.result.createObjectStore("queue", { keyPath: "scan_id" }); open.result.createObjectStore("kv"); };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbp;
}
async function tx(store, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(store, mode);
    const req = fn(t.objectStore(store));
    t.oncomplete = () => resolve(req && req.result);
    t.onerror = () => reject(t.error);
  });
}
const kvGet = (k) => tx("kv", "readonly", (s) => s.get(k));
const kvSet = (k, v) => tx("kv", "readwrite", (s) => s.put(v, k));
const queueAll = () => tx("queue", "readonly", (s) => s.getAll());

// -- network --------------------------------------------------------------------------
async function api(path, { method = "GET", body, auth = true, timeoutMs = 3000 } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (auth) headers.Authorization = `Bearer ${await token()}`;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const r = await fetch(path, { method, headers, body: body && JSON.stringify(body), signal: ctl.signal });
    setOnline(true);
    return r;
  } catch (e) {
    setOnline(false);
    throw e;
  } finally { clearTimeout(timer); }
}

async function token() {
  if (state.token && Date.now() < state.tokenUntil) return state.token;
  return fetchToken();
}

let tokenFetch = null;
function fetchToken() {
  tokenFetch ??= newToken().finally(() => { tokenFetch = null; });
  return tokenFetch;
}

async function newToken() {
  const c = JSON.parse(localStorage.getItem(CREDS));
  const r = await fetch("/v1/auth/token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret }) });
  if (!r.ok) throw new Error(`token ${r.status}`);
  const t = await r.json();
  state.token = t.access_token;
  // Fresh again a minute before it expires (or at half its life, if shorter).
  state.tokenUntil = Date.now() + Math.max(t.expires_in * 500, (t.expires_in - 60) * 1000);
  return state.token;
}

// Keep the token fresh off the scan path: a refresh never waits inside a scan.
function refreshTokenSoon() {
  if (!localStorage.getItem(CREDS) || !state.online) return;
  if (state.token && Date.now() < state.tokenUntil - 120_000) return;
  fetchToken().catch(() => {});
}

function setOnline(on) {
  const was = state.online;
  state.online = on;
  renderBar();
  if (on && !was) syncQueue();
}

// -- the bundle ------------------------------------------------------------------------
async function fetchBundle() {
  try {
    const [b, k] = await Promise.all([api("/v1/gates/bundle"), api("/v1/gates/bundle/keys", { auth: false })]);
    if (!b.ok || !k.ok) return;
    const bundle = await b.json(), keys = await k.json();
    await loadBundle(bundle.bundle, keys, Date.now());
    await kvSet("bundle", { token: bundle.bundle, keys, fetched_at: Date.now() });
    state.bundleAt = Date.now();
  } catch { /* offline: keep what we have */ }
}

async function loadBundle(tokenText, keys, fetchedAt) {
  try {
    const saved = await kvGet("gate-state");
    state.offline = await OfflineGate.load(tokenText, keys, state.gate.client_id, Date.now(), saved);
    state.bundleAt = fetchedAt;
    state.bundleExpires = Date.parse(state.offline.document.expires_at);
  } catch (e) {
    if (!(e instanceof BundleInvalid)) throw e;
    state.offline = null;
  }
  renderBar();
}

// -- scanning ----------------------------------------------------------------------------
// What the field got: an ID number from the card reader, or a code (phone or printed).
function scan(text) {
  return ID_CARD.test(text) ? scanCredential({ id_card: text.toUpperCase() }) : scanCredential({ code: text });
}

// One scan, online with the party on the holder's booking, else (a code) offline.
// `companions` is "reservation" or the dependent_refs staff chose after a first answer.
async function scanCredential(credential, companions = "reservation", direction = state.direction) {
  const started = performance.now();
  state.party = null;
  let shown = state.online ? await scanOnline(credential, direction, companions) : null;
  if (!shown && credential.id_card) {
    // Offline nobody can tell whose card it is: the bundle names no one.
    shown = { decision: "deny", reason: null, message: "id_card_offline", credential: "id_card", online: false };
  }
  if (!shown) shown = await decideOffline(credential.code, direction);
  if (shown.online && shown.dependents?.length) state.party = { credential, direction, at: Date.now() };
  verdict(shown, started);
}

// The server's answer as the screen shows it; null when the server cannot answer (offline,
// a server error): then a code is decided offline.
async function scanOnline(credential, direction, companions) {
  try {
    const sid = `gc-${crypto.randomUUID().replace(/-/g, "")}`;
    const r = await api("/v1/gates/scan", { method: "POST", body: { scan_id: sid, ...credential, direction, companions } });
    if (r.ok) {
      const a = await r.json();
      return { decision: a.decision, reason: a.reason, name: a.display?.masked_name, status: a.display?.status,
        occupancy: a.occupancy, capacity: a.capacity, scan_id: a.scan_id, online: true, credential: a.credential,
        companions: a.companions || [], dependents: a.dependents || [] };
    }
    const problem = await r.json().catch(() => ({}));
    // A refusal of the request itself (too many ID-card checks, too large a party) is said
    // in words; anything else a code may still be decided offline.
    if (T.problems[problem.code] && r.status < 500) {
      return { decision: "deny", reason: problem.code, problem: problem.code, online: true, credential: credential.id_card ? "id_card" : "code" };
    }
    // Any other refusal of an ID-card request (a server error: it cannot be decided offline).
    if (credential.id_card && r.status < 500) return { decision: "deny", reason: problem.code || null, problem: "validation_failed", online: true, credential: "id_card" };
  } catch { /* offline: decided from the bundle */ }
  return null;
}

async function decideOffline(code, direction) {
  if (!state.offline || Date.now() >= state.bundleExpires) {
    return { decision: "deny", reason: null, message: "bundle_expired" };
  }
  const s = await state.offline.decide(code, direction, Date.now());
  const { status, kind, ...queued } = s;
  await tx("queue", "readwrite", (st) => st.put(queued));
  await kvSet("gate-state", state.offline.state());
  state.queue += 1;
  renderBar();
  return { decision: s.decision, reason: s.reason, status, occupancy: state.offline.occupancy,
    capacity: Number(state.offline.document.capacity), online: false, credential: kind === "printed" ? "printed" : "code" };
}

// Let the holder's dependents chosen by staff through with them: the same credential again
// (the holder is answered as a repeat), kept in memory for a minute at most.
function sendParty() {
  const party = state.party;
  const refs = [...document.querySelectorAll("#party input:checked")].map((i) => i.value);
  if (!party || !refs.length || Date.now() - party.at > PARTY_MS) { state.party = null; paintParty(); return; }
  scanCredential(party.credential, refs, party.direction);
}

async function syncQueue() {
  const scans = await queueAll();
  if (!scans.length) return;
  try {
    const r = await api("/v1/gates/sync", { method: "POST", body: { scans, gate_time: new Date().toISOString() }, timeoutMs: 15000 });
    if (!r.ok) return;
    const out = await r.json();
    await tx("queue", "readwrite", (st) => { for (const s of scans) st.delete(s.scan_id); });
    state.queue = 0;
    renderBar();
    const box = $("#sync");
    box.hidden = false;
    box.replaceChildren(el("p", { "data-testid": "synced" }, fmt(T.synced, { n: scans.length })));
    if (out.conflicts.length) {
      box.append(el("h3", {}, T.conflicts));
      for (const c of out.conflicts) {
        const words = c.conflicts.map((k) => T.sync_conflicts[k] || k).join("；");
        const p = el("p", { class: "conflict", "data-testid": "conflict" }, `${fmt(T.conflict_scan, { t: when(c.scan_id, scans) })}${words}`);
        p.dataset.conflicts = c.conflicts.join(" ");
        box.append(p);
      }
    }
    const rejected = out.results.filter((x) => x.outcome === "rejected");
    if (rejected.length) {
      box.append(el("h3", {}, T.rejected));
      for (const x of rejected) box.append(el("p", { class: "conflict", "data-testid": "rejected" }, `${fmt(T.conflict_scan, { t: when(x.scan_id, scans) })}${T.sync_rejections[x.reason] || x.reason}`));
    }
    fetchBundle();
  } catch { /* still offline */ }
}

function when(scanId, scans) {
  const s = scans.find((x) => x.scan_id === scanId);
  return s ? new Date(s.scanned_at).toLocaleTimeString(lang) : scanId;
}

// -- screen --------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function beep(admit) {
  try {
    const ctx = (beep.ctx ??= new AudioContext());
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = admit ? 880 : 220;
    g.gain.value = 0.2;
    o.connect(g).connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + (admit ? 0.15 : 0.5));
  } catch { /* no audio device */ }
}

function verdict(v, started) {
  state.last = v;
  state.notice = "";
  paint(v);
  const box = $("#verdict");
  box.dataset.ms = String(performance.now() - started);
  box.dataset.seq = String(Number(box.dataset.seq || 0) + 1);
  // The sound after the screen: the verdict is never held up by the audio device.
  setTimeout(() => beep(v.decision === "admit"), 0);
  if (v.decision === "admit" && v.online && state.direction === "in") state.lastAdmit = { scan_id: v.scan_id, at: Date.now() };
  $("#annul").disabled = !state.lastAdmit;
}

function reasonWords(v) {
  if (v.message) return T[v.message];
  if (v.problem) return T.problems[v.problem];
  return T.reasons[v.reason] || v.reason || "";
}

function paint(v) {
  const box = $("#verdict");
  box.className = `verdict ${v.decision}`;
  box.dataset.decision = v.decision;
  box.dataset.reason = v.reason || v.message || "";
  box.dataset.mode = v.online ? "online" : "offline";
  box.dataset.credential = v.credential || "";
  const printedOffline = v.credential === "printed" && !v.online && v.decision === "admit";
  box.replaceChildren(
    el("p", { class: "word" }, v.decision === "admit" ? T.admit : T.deny),
    el("p", { class: "reason", "data-testid": "reason" }, reasonWords(v)),
    el("p", { class: "who" }, [v.name, v.status && T.status[v.status], v.credential && v.credential !== "code" && T.credential[v.credential]].filter(Boolean).join(" · ")),
    printedOffline ? el("p", { class: "note", "data-testid": "printed-note" }, T.printed_unchecked) : "",
    el("p", { class: "occ" }, v.occupancy != null ? fmt(T.occupancy, { o: v.occupancy, c: v.capacity }) : ""),
  );
  paintCompanions(v);
  paintParty();
}

// Each companion of the party: masked name, 通行/禁止 and the reason in words.
function paintCompanions(v) {
  const list = $("#companions");
  const people = v.companions || [];
  list.hidden = !people.length;
  if (!people.length) { list.replaceChildren(); return; }
  list.replaceChildren(el("h2", {}, T.companions), el("ul", {}, ...people.map((c) => {
    const li = el("li", { class: `companion ${c.decision}`, "data-testid": "companion" },
      el("span", { class: "cname" }, c.display?.masked_name || "—"),
      el("span", { class: "cword" }, c.decision === "admit" ? T.admit : T.deny),
      el("span", { class: "creason" }, T.reasons[c.reason] || c.reason));
    li.dataset.decision = c.decision;
    li.dataset.reason = c.reason;
    return li;
  })));
}

// The holder's other dependents (not in this party), for staff to let through with them.
function paintParty() {
  const box = $("#party");
  const v = state.last;
  const passing = new Set((v?.companions || []).map((c) => c.dependent_ref));
  const others = state.party && v?.decision === "admit" ? (v.dependents || []).filter((d) => !passing.has(d.dependent_ref)) : [];
  box.hidden = !others.length;
  if (!others.length) { box.replaceChildren(); return; }
  const send = el("button", { type: "button", id: "party-send", "data-testid": "party-send" }, T.companion_send);
  send.addEventListener("click", sendParty);
  box.replaceChildren(el("h2", {}, T.companion_pick), ...others.map((d) => {
    const id = `dep-${d.dependent_ref}`;
    return el("label", { class: "pick", for: id }, el("input", { type: "checkbox", id, value: d.dependent_ref }), d.masked_name);
  }), send);
}

function notice(key) {
  state.notice = key;
  const p = $("#notice");
  p.textContent = key ? T[key] : "";
  p.dataset.key = key;
}

async function annul() {
  const last = state.lastAdmit;
  if (!last) return;
  // The server's window is 60 s from its record of the admit; the page refuses past it too.
  if (Date.now() - last.at > 60_000) { state.lastAdmit = null; $("#annul").disabled = true; notice("annul_too_late"); return; }
  let r;
  try { r = await api(`/v1/gates/scan/${last.scan_id}/annul`, { method: "POST" }); } catch { notice("annul_offline"); return; }
  state.lastAdmit = null;
  $("#annul").disabled = true;
  if (!r.ok) {
    const problem = await r.json().catch(() => ({}));
    notice(problem.code === "annul_window_passed" ? "annul_too_late" : "annul_refused");
    return;
  }
  if (r.ok) {
    const a = await r.json();
    const box = $("#verdict");
    box.dataset.reason = "annulled";
    box.querySelector(".reason").textContent = T.annulled;
    box.querySelector(".occ").textContent = fmt(T.occupancy, { o: a.occupancy, c: "" }).replace(/ \/ $/, "");
  }
}

function renderBar() {
  const net = $("#net");
  net.textContent = state.online ? T.online : T.offline;
  net.className = state.online ? "online" : "offline";
  net.dataset.state = state.online ? "online" : "offline";
  const age = $("#bundle-age");
  age.dataset.issued = state.offline?.document.issued_at || "";
  if (!state.offline) age.textContent = T.bundle_none;
  else if (Date.now() >= state.bundleExpires) age.textContent = T.bundle_expired;
  else age.textContent = fmt(T.bundle_age, { m: Math.floor((Date.now() - state.bundleAt) / 60000) });
  $("#queue").textContent = fmt(T.queue, { n: state.queue });
  $("#queue").dataset.count = String(state.queue);
  if (state.gate) $("#gate-name").textContent = state.gate.name;
  $("#lang").textContent = T.other_lang;
  $("#lang").lang = lang === "en" ? "zh-CN" : "en";
  const elder = document.documentElement.classList.contains("elder");
  $("#elder").textContent = elder ? T.elder_off : T.elder_on;
  $("#elder").setAttribute("aria-pressed", String(elder));
}

// Elder mode (长辈模式) as on the resident pages: larger text and buttons, remembered here.
function applyElder() {
  document.documentElement.classList.toggle("elder", localStorage.getItem(ELDER) === "1");
}

function switchElder() {
  localStorage.setItem(ELDER, localStorage.getItem(ELDER) === "1" ? "0" : "1");
  applyElder();
  renderBar();
}

// The zh-CN/English switch, remembered on this device; the screen is redrawn in place.
function switchLang() {
  lang = lang === "en" ? "zh-CN" : "en";
  localStorage.setItem(LANG, lang);
  T = LANGS[lang];
  document.documentElement.lang = lang;
  document.title = T.title;
  if (state.gate) {
    const { last, notice: key } = state;
    consoleScreen();
    if (last) paint(last);
    $("#annul").disabled = !state.lastAdmit;
    notice(key);
  } else {
    pairScreen();
  }
  renderBar();
}

function pairScreen(error) {
  const input = el("input", { id: "pairing-code", autocomplete: "off", placeholder: "XXXX-XXXX" });
  const button = el("button", { id: "pair" }, T.pair_button);
  const form = el("form", { class: "pair" }, el("h1", {}, T.pair_title), el("p", {}, T.pair_hint), input, button,
    el("p", { class: "error", "data-testid": "pair-error" }, error || ""));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await fetch("/v1/gates/pair", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pairing_code: input.value }) });
    if (!r.ok) { pairScreen(T.paired_bad); return; }
    localStorage.setItem(CREDS, JSON.stringify(await r.json()));
    start();
  });
  $("#root").replaceChildren(form);
  input.focus();
}

function consoleScreen() {
  const input = el("input", { id: "scan", autocomplete: "off", placeholder: T.scan_hint, "data-testid": "scan" });
  const form = el("form", { class: "scan" }, input);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const code = input.value.trim();
    input.value = "";
    if (code) scan(code);
  });
  const controls = el("div", {});
  if (state.gate.direction === "both") {
    for (const d of ["in", "out"]) {
      const id = `dir-${d}`;
      const radio = el("input", { type: "radio", name: "dir", id, value: d });
      radio.checked = state.direction === d;
      radio.addEventListener("change", () => { state.direction = d; input.focus(); });
      controls.append(el("label", { class: "dir", for: id }, radio, d === "in" ? T.dir_in : T.dir_out));
    }
  } else {
    state.direction = state.gate.direction;
  }
  const annulButton = el("button", { id: "annul", type: "button" }, T.annul);
  annulButton.disabled = true;
  annulButton.addEventListener("click", () => { annul(); input.focus(); });
  controls.append(annulButton);
  const cameraButton = el("button", { id: "camera", type: "button", "data-testid": "camera" }, camera.stream ? T.camera_off : T.camera_on);
  cameraButton.addEventListener("click", () => { toggleCamera(); input.focus(); });
  controls.append(cameraButton);
  const video = camera.video || el("video", { id: "camera-view", muted: "", playsinline: "", hidden: "" });
  $("#root").replaceChildren(form, idCardForm(), controls, el("p", { id: "notice", class: "error", "data-testid": "notice" }), video,
    el("section", { id: "verdict", class: "verdict" }), el("section", { id: "companions", class: "companions", hidden: "" }),
    el("section", { id: "party", class: "party", hidden: "" }), el("section", { id: "sync", class: "conflicts", hidden: "" }));
  input.focus();
}

// ISO 7064 MOD 11-2, the ID number's check character: a typo is caught before it is sent.
function idNumberValid(text) {
  if (!ID_CARD.test(text)) return false;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = weights.reduce((acc, w, i) => acc + w * Number(text[i]), 0);
  return "10X98765432"[sum % 11] === text[17].toUpperCase();
}

// Typed by staff when the card reader cannot read a card (the reader itself types into the
// scan field like the code scanner).
function idCardForm() {
  const input = el("input", { id: "id-card", autocomplete: "off", inputmode: "text", maxlength: "18",
    placeholder: T.id_card_short, "aria-label": T.id_card_hint, title: T.id_card_hint, "data-testid": "id-card" });
  const form = el("form", { class: "idcard" }, input, el("button", { id: "id-card-check", type: "submit" }, T.id_card_button));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const number = input.value.trim().toUpperCase();
    if (!idNumberValid(number)) { notice("id_card_bad"); input.focus(); return; }
    input.value = "";
    notice("");
    scanCredential({ id_card: number });
    $("#scan").focus();
  });
  return form;
}

// -- camera: BarcodeDetector where the browser has one, else the vendored jsQR -------------
const camera = { stream: null, video: null, timer: null, detector: null, canvas: null, seen: null, lastSeenAt: 0 };
const FRAME_MS = 250; // four frames a second
const GONE_MS = 1500; // a code out of view this long may be scanned again when it returns

async function decoder() {
  if ("BarcodeDetector" in self) {
    try {
      if ((await BarcodeDetector.getSupportedFormats()).includes("qr_code")) {
        const d = new BarcodeDetector({ formats: ["qr_code"] });
        return async (video) => (await d.detect(video))[0]?.rawValue || null;
      }
    } catch { /* fall back to jsQR */ }
  }
  await import("../vendor/jsqr-1.4.0/jsQR.js"); // sets self.jsQR
  camera.canvas ??= document.createElement("canvas");
  const ctx = camera.canvas.getContext("2d", { willReadFrequently: true });
  return async (video) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    camera.canvas.width = w; camera.canvas.height = h;
    ctx.drawImage(video, 0, 0, w, h);
    const found = self.jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  };
}

async function toggleCamera() {
  if (camera.stream) { stopCamera(); return; }
  try {
    camera.detector ??= await decoder();
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment", width: 640, height: 480 }, audio: false });
  } catch {
    notice("camera_failed");
    return;
  }
  const video = (camera.video = $("#camera-view"));
  video.srcObject = camera.stream;
  video.hidden = false;
  await video.play().catch(() => {});
  $("#camera").textContent = T.camera_off;
  document.body.dataset.camera = "on";
  let busy = false;
  camera.timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const code = await camera.detector(video);
      const now = Date.now();
      if (code) {
        // Once per appearance: the same code in the next frames is the same presentation.
        if (code !== camera.seen || now - camera.lastSeenAt > GONE_MS) scan(code);
        camera.seen = code;
        camera.lastSeenAt = now;
      } else if (now - camera.lastSeenAt > GONE_MS) {
        camera.seen = null;
      }
    } catch { /* a frame that fails to decode is skipped */ }
    busy = false;
  }, FRAME_MS);
}

function stopCamera() {
  clearInterval(camera.timer);
  for (const t of camera.stream?.getTracks() || []) t.stop();
  camera.stream = null;
  if (camera.video) { camera.video.srcObject = null; camera.video.hidden = true; }
  $("#camera").textContent = T.camera_on;
  document.body.dataset.camera = "off";
}

async function start() {
  const c = localStorage.getItem(CREDS);
  if (!c) { pairScreen(); renderBar(); return; }
  state.gate = JSON.parse(c);
  consoleScreen();
  state.queue = (await queueAll()).length;
  const saved = await kvGet("bundle");
  if (saved) await loadBundle(saved.token, saved.keys, saved.fetched_at);
  renderBar();
  if (navigator.onLine) { await fetchBundle(); syncQueue(); }
  document.body.dataset.ready = "1";
}

// The service worker keeps the shell for a start with no network (scope /gate/).
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register(import.meta.resolve("./sw.js"), { scope: "/gate/", type: "module" })
    .then(() => navigator.serviceWorker.ready)
    .then(() => { document.body.dataset.sw = "ready"; })
    .catch(() => { document.body.dataset.sw = "failed"; });
}
// The scanner types into the field whatever has focus: keep it there.
document.addEventListener("click", (e) => {
  const input = $("#scan");
  if (input && !(e.target instanceof HTMLInputElement) && !(e.target instanceof HTMLLabelElement)) input.focus();
});
$("#lang").addEventListener("click", switchLang);
$("#elder").addEventListener("click", switchElder);
applyElder();
document.documentElement.lang = lang;
document.title = T.title;
window.addEventListener("online", () => { setOnline(true); });
window.addEventListener("offline", () => setOnline(false));
setInterval(() => { renderBar(); refreshTokenSoon(); if (state.online) syncQueue(); }, 5000);
setInterval(fetchBundle, 10 * 60_000);
start();
