// My code: the QR drawn in the browser from the code string, framed in the status
// colour with its name, the masked name, a countdown to `refresh_after` and automatic
// refresh. Paused while the page is hidden, renewed at once when shown again. A code
// past its expiry is greyed ("refreshing"); offline, the page says so.
import qrcode from "qrcode-generator";
import { t } from "../i18n.js";
import * as api from "../api.js";
import { h, showProblem } from "../ui.js";

let state = null;

function draw(canvas, text) {
  const qr = qrcode(0, "M");
  qr.addData(text, "Alphanumeric");
  qr.make();
  const count = qr.getModuleCount();
  const quiet = 4;
  const scale = Math.max(4, Math.floor(288 / (count + 2 * quiet)));
  const size = (count + 2 * quiet) * scale;
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, size, size);
  g.fillStyle = "#000";
  for (let r = 0; r < count; r += 1) {
    for (let c = 0; c < count; c += 1) {
      if (qr.isDark(r, c)) g.fillRect((c + quiet) * scale, (r + quiet) * scale, scale, scale);
    }
  }
}

export async function enter(main) {
  const status = h("div", { class: "status", "aria-live": "polite" });
  main.append(h("h1", {}, t("code.heading")), status);
  let me;
  try {
    me = await api.api("GET", "/v1/residents/me");
  } catch (problem) {
    return showProblem(status, problem);
  }
  if (!me.identity_bound) {
    return main.append(h("p", { class: "card" }, t("code.need_identity"), " ", h("a", { href: "#/me" }, t("identity.heading"))));
  }
  const who = [{ id: null, name: me.masked_name, label: t("code.self") }].concat(
    me.dependents.map((d) => ({ id: d.dependent_id, name: d.masked_name, label: t("code.dependent", { name: d.masked_name }) })),
  );
  const switcher = h("div", { class: "switcher", role: "group", "aria-label": t("code.for") },
    who.map((w, i) => h("button", { type: "button", class: "chip", "data-subject": w.id || "self", "aria-pressed": String(i === 0) }, w.label)));
  const canvas = h("canvas", { id: "qr", role: "img" });
  const frame = h("figure", { class: "code-frame", id: "code-frame" });
  const colour = h("p", { class: "colour", id: "code-status" });
  const name = h("p", { class: "masked-name", id: "masked-name" });
  const overlay = h("p", { class: "overlay", id: "code-overlay", hidden: true });
  const countdown = h("p", { class: "countdown", id: "countdown", "aria-live": "off" });
  const refreshButton = h("button", { type: "button", id: "refresh-code", class: "secondary" }, t("code.refresh"));
  frame.append(h("div", { class: "qr-wrap" }, canvas, overlay), h("figcaption", {}, colour, name));
  main.append(switcher, frame, countdown, refreshButton);

  state = { subject: who[0], code: null, refreshAt: 0, expiresAt: 0, issued: null, timer: null, loading: false, status, canvas, frame, colour, name, overlay, countdown };
  switcher.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    for (const b of switcher.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
    state.subject = who.find((w) => (w.id || "self") === button.dataset.subject);
    state.code = null;
    fetchCode();
  });
  refreshButton.addEventListener("click", () => fetchCode());
  document.addEventListener("visibilitychange", onVisibility);
  await fetchCode();
}

async function fetchCode() {
  const s = state;
  if (!s || s.loading) return;
  s.loading = true;
  clearTimeout(s.timer);
  paint();
  const path = s.subject.id ? `/v1/codes/me?dependent_id=${encodeURIComponent(s.subject.id)}` : "/v1/codes/me";
  try {
    const code = await api.api("GET", path);
    if (s !== state) return;
    // Times counted on this device's clock from the moment the code arrived, so a
    // phone whose clock is off still refreshes and expires on time.
    const now = Date.now();
    const lifetime = Date.parse(code.expires_at) - Date.parse(code.issued_at);
    s.code = code;
    s.issued = new Date(now);
    s.refreshAt = now + code.refresh_after * 1000;
    s.expiresAt = now + lifetime;
    s.status.replaceChildren();
    draw(s.canvas, code.code);
    s.canvas.dataset.code = code.code;
  } catch (problem) {
    if (s === state && !(problem instanceof api.Offline)) showProblem(s.status, problem);
  } finally {
    s.loading = false;
  }
  if (s === state) tick();
}

function paint() {
  const s = state;
  const now = Date.now();
  const code = s.code;
  const expired = !code || now >= s.expiresAt;
  const offline = document.documentElement.classList.contains("is-offline");
  s.frame.className = `code-frame ${code ? `status-${code.status}` : "status-none"}${expired ? " expired" : ""}`;
  s.frame.dataset.state = expired ? "expired" : "valid";
  s.colour.textContent = code ? t(`status.${code.status}`) : "";
  s.name.textContent = s.subject.name || "";
  s.canvas.setAttribute("aria-label", t("code.alt", { name: s.subject.name || "", status: code ? t(`status.${code.status}`) : "" }));
  s.overlay.hidden = !expired;
  s.overlay.textContent = offline ? t("code.expired_offline") : code ? t("code.expired") : t("code.refreshing");
  const left = Math.max(0, Math.ceil((s.refreshAt - now) / 1000));
  if (expired) s.countdown.textContent = offline ? t("code.expired_offline") : t("code.refreshing");
  else if (offline) s.countdown.textContent = t("code.offline_note", { time: s.issued.toLocaleTimeString(), s: Math.ceil((s.expiresAt - now) / 1000) });
  else s.countdown.textContent = s.loading ? t("code.refreshing") : t("code.countdown", { s: left });
}

function tick() {
  const s = state;
  if (!s) return;
  clearTimeout(s.timer);
  paint();
  if (document.hidden) return; // paused; onVisibility resumes
  const offline = document.documentElement.classList.contains("is-offline");
  if (!offline && Date.now() >= s.refreshAt && !s.loading) return void fetchCode();
  s.timer = setTimeout(tick, 250);
}

function onVisibility() {
  if (!state) return;
  if (document.hidden) clearTimeout(state.timer);
  else tick();
}

export function onNetwork(online) {
  if (!state) return;
  if (online && Date.now() >= state.refreshAt) fetchCode();
  else tick();
}

export function leave() {
  if (state) clearTimeout(state.timer);
  state = null;
  document.removeEventListener("visibilitychange", onVisibility);
}
