// The operator view: a venue operator logs in with the operator client's id and secret
// (common/desk-client.js: kept in sessionStorage, token renewed before expiry) and sees,
// for their venue, GET /v1/venues/{id}/stats: occupancy now, today's entries by gate and
// hour (an SVG bar chart), the gates' last contact and bundle age, today's slots with
// booked and entered counts. Refreshed every 10 s while the page is visible.
import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";
import * as api from "../common/desk-client.js";

const CATALOGUES = { "zh-CN": zh, en };
const LANG_KEY = "suishen.operator.lang";
const VENUE_KEY = "suishen.operator.venue";
const REFRESH_MS = 10_000;
const SVG = "http://www.w3.org/2000/svg";
let lang = CATALOGUES[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
document.documentElement.lang = lang;

const t = (key, vars = {}) =>
  (CATALOGUES[lang][key] ?? zh[key] ?? key).replace(/\{(\w+)\}/g, (_, n) => String(vars[n] ?? ""));

// An element (HTML, or SVG with ns) with attributes and children; no inline handlers.
function el(ns, tag, attrs, children = []) {
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of [children].flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const h = (tag, attrs, ...children) => el(null, tag, attrs, children);
const s = (tag, attrs, ...children) => el(SVG, tag, attrs, children);

const state = { venues: [], stats: null, problem: null, updatedAt: null, busy: false };
const root = document.getElementById("root");
const venueId = () => sessionStorage.getItem(VENUE_KEY);

function problemText(problem) {
  const code = problem instanceof api.ApiProblem ? problem.code : "unknown";
  return CATALOGUES[lang][`problem.${code}`] ? t(`problem.${code}`) : t("problem.unknown");
}

function ago(iso) {
  if (!iso) return t("gates.never");
  const n = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (n < 120) return t("age.seconds", { n });
  if (n < 7200) return t("age.minutes", { n: Math.round(n / 60) });
  return t("age.hours", { n: Math.round(n / 3600) });
}

function clock(iso) {
  return new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", hour12: false });
}

// -- data --------------------------------------------------------------------------------

async function loadVenues() {
  try {
    const answer = await fetch("/v1/venues", { headers: { Accept: "application/json" } });
    state.venues = answer.ok ? (await answer.json()).items : [];
  } catch {
    state.venues = [];
  }
}

async function refresh() {
  if (!api.loggedIn() || !venueId() || state.busy) return;
  state.busy = true;
  try {
    state.stats = await api.call("GET", `/v1/venues/${encodeURIComponent(venueId())}/stats`);
    state.updatedAt = new Date();
    state.problem = null;
  } catch (problem) {
    state.problem = problemText(problem);
    if (problem instanceof api.ApiProblem && [401, 403, 404].includes(problem.status)) {
      api.logout();
      state.stats = null;
    }
  } finally {
    state.busy = false;
    render();
  }
}

function login(event) {
  event.preventDefault();
  const form = event.target;
  state.problem = null;
  api.login(form.client_id.value.trim(), form.client_secret.value).then(
    () => {
      sessionStorage.setItem(VENUE_KEY, form.venue.value);
      return refresh();
    },
    (problem) => {
      state.problem = problemText(problem);
      render();
    },
  );
}

// Every REFRESH_MS while visible; at once when the page is shown again.
setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

// -- views -------------------------------------------------------------------------------

function loginView() {
  return h("form", { class: "login", onsubmit: login },
    h("h2", {}, t("login.heading")),
    h("label", {}, t("login.venue"),
      h("select", { name: "venue", required: true },
        state.venues.map((v) => h("option", { value: v.id, selected: v.id === venueId() }, v.name)))),
    h("label", {}, t("login.client_id"), h("input", { name: "client_id", required: true, autocomplete: "username" })),
    h("label", {}, t("login.client_secret"),
      h("input", { name: "client_secret", type: "password", required: true, autocomplete: "current-password" })),
    h("p", { class: "muted" }, t("login.hint")),
    state.problem ? h("p", { class: "problem", role: "alert" }, state.problem) : null,
    h("button", { type: "submit" }, t("login.submit")));
}

function occupancyView(stats) {
  const share = stats.capacity ? Math.min(100, Math.round((100 * stats.occupancy) / stats.capacity)) : 0;
  return h("section", { class: "occupancy" },
    h("h2", {}, t("occupancy.heading")),
    h("p", { class: "big", "data-occupancy": stats.occupancy, "data-capacity": stats.capacity },
      `${stats.occupancy} / ${stats.capacity}`),
    h("div", { class: stats.occupancy >= stats.capacity ? "bar full" : "bar" }, h("div", { class: `w${share}` })),
    h("p", { class: "muted" }, t("occupancy.of", { capacity: stats.capacity }), " · ",
      t("occupancy.free", { free: Math.max(0, stats.capacity - stats.occupancy) })));
}

// Grouped bars: one group per local hour, one bar per gate, height by entries.
function chartView(stats) {
  const rows = stats.by_gate_hour;
  const gates = [...new Map(rows.map((r) => [r.gate_id, r.gate_name])).entries()];
  const colour = new Map(gates.map(([id], n) => [id, `c${n % 6}`]));
  const body = [];
  if (rows.length) {
    const hours = rows.map((r) => r.hour);
    const first = Math.min(...hours), last = Math.max(...hours);
    const top = Math.max(1, ...rows.map((r) => Math.max(r.entries, r.exits)));
    const W = 640, H = 200, left = 30, bottom = 24, groupW = (W - left) / (last - first + 1);
    const barW = Math.min(36, Math.max(6, (groupW * 0.8) / (2 * gates.length)));
    const chart = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("chart.heading") },
      s("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
      s("text", { x: 2, y: 12 }, String(top)));
    for (let hour = first; hour <= last; hour += 1) {
      const x0 = left + (hour - first) * groupW + groupW * 0.1;
      chart.append(s("text", { x: x0, y: H - 6 }, t("chart.hour", { hour })));
      gates.forEach(([gateId, name], n) => {
        const row = rows.find((r) => r.hour === hour && r.gate_id === gateId);
        if (!row) return;
        const tip = t("chart.legend", { gate: name, hour, entries: row.entries, exits: row.exits });
        const tall = (count) => ((H - bottom - 16) * count) / top;
        const x = x0 + 2 * n * barW;
        chart.append(s("rect", {
          class: `bar-entries ${colour.get(gateId)}`, x, y: H - bottom - tall(row.entries),
          width: barW - 2, height: tall(row.entries), "data-gate": gateId, "data-hour": hour,
          "data-entries": row.entries, "data-exits": row.exits,
        }, s("title", {}, tip)));
        chart.append(s("rect", {
          class: `bar-exits ${colour.get(gateId)}`, x: x + barW - 2, y: H - bottom - tall(row.exits),
          width: barW - 2, height: tall(row.exits),
        }, s("title", {}, tip)));
      });
    }
    body.push(h("div", { class: "legend" },
      gates.map(([id, name]) => h("span", {}, h("span", { class: `swatch ${colour.get(id)}` }), name)),
      h("span", { class: "muted" }, t("chart.key"))), chart);
  } else {
    body.push(h("p", { class: "muted" }, t("chart.none")));
  }
  return h("section", { class: "chart-panel" }, h("h2", {}, t("chart.heading")), ...body);
}

function gatesView(stats) {
  return h("section", { class: "wide gates" },
    h("h2", {}, t("gates.heading")),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, t("gates.name")), h("th", {}, t("gates.direction")),
        h("th", {}, t("gates.last_contact")), h("th", {}, t("gates.bundle_age")))),
      h("tbody", {}, stats.gates.map((g) => h("tr", { "data-gate": g.id },
        h("td", {}, g.name),
        h("td", {}, t(`direction.${g.direction}`)),
        h("td", { class: "last-contact", "data-at": g.last_contact_at ?? "" }, ago(g.last_contact_at)),
        h("td", { class: g.bundle_age_s > 86_400 ? "bundle-age stale" : "bundle-age", "data-age": g.bundle_age_s ?? "" },
          g.bundle_fetched_at ? ago(g.bundle_fetched_at) : t("gates.never")))))));
}

function slotsView(stats) {
  if (!stats.slots.length) return h("section", { class: "wide slots" }, h("h2", {}, t("slots.heading")), h("p", { class: "muted" }, t("slots.none")));
  return h("section", { class: "wide slots" },
    h("h2", {}, t("slots.heading")),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, t("slots.time")), h("th", { class: "num" }, t("slots.capacity")),
        h("th", { class: "num" }, t("slots.booked")), h("th", { class: "num" }, t("slots.entered")))),
      h("tbody", {}, stats.slots.map((slot) => h("tr", { "data-slot": slot.id },
        h("td", {}, `${clock(slot.starts_at)}–${clock(slot.ends_at)}`),
        h("td", { class: "num capacity" }, slot.capacity),
        h("td", { class: "num booked" }, slot.booked),
        h("td", { class: "num entered" }, slot.entered))))));
}

function render() {
  document.title = t("title");
  const venue = state.venues.find((v) => v.id === venueId());
  const loggedIn = api.loggedIn() && venueId();
  const header = h("header", {},
    h("h1", {}, t("title"), loggedIn && venue ? ` · ${venue.name}` : ""),
    h("button", { type: "button", class: "lang", onclick: () => {
      lang = lang === "zh-CN" ? "en" : "zh-CN";
      localStorage.setItem(LANG_KEY, lang);
      document.documentElement.lang = lang;
      render();
    } }, t("lang.switch")),
    loggedIn ? h("button", { type: "button", class: "logout", onclick: () => {
      api.logout();
      state.stats = null;
      render();
    } }, t("logout")) : null);
  let body;
  if (!loggedIn) body = loginView();
  else if (!state.stats) body = h("main", {}, state.problem ? h("p", { class: "problem", role: "alert" }, state.problem) : h("p", { class: "boot" }, "…"));
  else {
    const stats = state.stats;
    body = h("main", {},
      occupancyView(stats), chartView(stats), gatesView(stats), slotsView(stats),
      h("p", { class: "muted wide updated" }, state.problem ? h("span", { class: "problem" }, state.problem) : null,
        state.updatedAt ? t("updated", { time: state.updatedAt.toLocaleTimeString(lang, { hour12: false }) }) : ""));
  }
  // What was typed in the login form survives a re-render (a wrong secret, a language switch).
  const kept = {};
  for (const input of root.querySelectorAll("input")) kept[input.name] = input.value;
  root.replaceChildren(header, body);
  for (const input of root.querySelectorAll("input")) if (kept[input.name]) input.value = kept[input.name];
}

await loadVenues();
render();
refresh();
