// The hospital desk: log in as the hospital's machine client, scan a patient's code to open
// an encounter, post charge lines, close and show the split, refund a line, today's list
// and the daily statement. Public API only; every POST carries a key made once per action.
import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";
import * as api from "../common/desk-client.js";

const CATALOGUES = { "zh-CN": zh, en };
const LANG_KEY = "suishen.desk.lang";
let lang = CATALOGUES[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : "zh-CN";
document.documentElement.lang = lang;

function t(key, vars = {}) {
  const text = CATALOGUES[lang][key] ?? zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

const yuan = (fen) => t("common.yuan", { amount: (fen / 100).toFixed(2) });

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function problemText(problem) {
  const code = problem instanceof api.ApiProblem ? problem.code : "unknown";
  const key = `problem.${code}`;
  const reason = problem?.body?.reason ?? "";
  return CATALOGUES[lang][key] ? t(key, { reason }) : t("problem.unknown");
}

// State of the screen; `current` is the encounter being served.
const state = {
  current: null, // {id, department, status, hold_fen, patient}
  lines: [], // {charge_id, item, amount_fen, refunded_fen}
  settlement: null,
  quote: null, // the bureau's pre-settlement, until a charge or refund makes it stale
  today: [],
  statement: null,
  problems: {}, // panel -> sentence
  notice: null,
};
const busy = new Set();

const root = document.getElementById("root");

// The daily statement is a UTC day (the API's definition); today's list is the local day.
function todayUTC() {
  return new Date().toISOString().slice(0, 10);
}

function todayLocal() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

// Run one user action: its button(s) disabled while in flight, its problem shown by code.
async function act(name, panel, work) {
  if (busy.has(name)) return;
  busy.add(name);
  state.problems[panel] = null;
  render();
  try {
    await work();
  } catch (problem) {
    if (problem instanceof api.ApiProblem && problem.status === 401 && !api.loggedIn()) {
      api.logout();
    }
    state.problems[panel] = problemText(problem);
  } finally {
    busy.delete(name);
    render();
  }
}

function problemOf(panel) {
  return state.problems[panel] ? h("p", { class: "problem", role: "alert" }, state.problems[panel]) : null;
}

// -- actions ---------------------------------------------------------------------------------

function login(event) {
  event.preventDefault();
  const form = event.target;
  act("login", "login", async () => {
    await api.login(form.client_id.value.trim(), form.client_secret.value);
    await refreshToday();
  });
}

function openEncounter(code, department) {
  const action = `open:${code}`;
  return act("open", "scan", async () => {
    const key = api.actionKey(action);
    try {
      const opened = await api.call("POST", "/v1/encounters", {
        body: { code, department },
        headers: { "Idempotency-Key": key },
      });
      state.current = opened;
      state.lines = [];
      state.settlement = null;
      state.quote = null;
      state.notice = null;
      api.actionDone(action);
    } catch (problem) {
      if (problem.code !== "network") api.actionDone(action);
      throw problem;
    }
    await refreshToday();
  });
}

// The form keeps its charge_id until the answer arrives: a retry is the same charge.
let chargeDraftId = null;
let resetCharge = false;
const CHARGE_FIELDS = ["item_code", "item_name", "quantity", "unit_price"];

function addCharge(event) {
  event.preventDefault();
  const form = event.target;
  const encounter = state.current;
  const unitFen = Math.round(Number.parseFloat(form.unit_price.value) * 100);
  const item = {
    item_code: form.item_code.value.trim(),
    name: form.item_name.value.trim(),
    category: form.category.value,
    quantity: Number.parseInt(form.quantity.value, 10),
    unit_price_fen: unitFen,
    insurance_class: form.insurance_class.value,
  };
  act("charge", "charge", async () => {
    chargeDraftId ??= `desk-${crypto.randomUUID()}`;
    try {
      const done = await api.call("POST", `/v1/encounters/${encounter.id}/charges`, {
        body: { charge_id: chargeDraftId, items: [item] },
      });
      if (!state.lines.some((line) => line.charge_id === done.charge_id)) {
        state.lines.push({ charge_id: done.charge_id, item: done.items[0], amount_fen: done.amount_fen, refunded_fen: done.refunded_fen });
      }
      state.current = { ...state.current, hold_fen: done.hold_fen };
      state.quote = null;
      chargeDraftId = null;
      resetCharge = true;
    } catch (problem) {
      if (problem.code !== "network") chargeDraftId = null;
      throw problem;
    }
  });
}

// What closing would settle now (segments and what the patient will be charged); a GET
// that changes nothing, so no key.
function quoteEncounter() {
  const encounter = state.current;
  act("quote", "charge", async () => {
    state.quote = await api.call("GET", `/v1/encounters/${encounter.id}/quote`);
  });
}

function closeEncounter() {
  const encounter = state.current;
  const action = `close:${encounter.id}`;
  act("close", "charge", async () => {
    const key = api.actionKey(action);
    const settled = await api.call("POST", `/v1/encounters/${encounter.id}/close`, {
      headers: { "Idempotency-Key": key },
    });
    api.actionDone(action);
    state.settlement = settled;
    state.quote = null;
    state.current = { ...state.current, status: "settled" };
    await refreshToday();
  });
}

function refundLine(line) {
  const encounter = state.current;
  const action = `refund:${encounter.id}:${line.charge_id}`;
  const amount = line.amount_fen - line.refunded_fen;
  act(action, "charge", async () => {
    const refundId = api.actionKey(action);
    const done = await api.call("POST", `/v1/encounters/${encounter.id}/refunds`, {
      body: { refund_id: refundId, charge_id: line.charge_id, amount_fen: amount },
    });
    api.actionDone(action);
    line.refunded_fen += done.amount_fen;
    state.quote = null;
    state.notice = t("refund.done", { amount: yuan(done.amount_fen) });
    await refreshToday();
  });
}

async function refreshToday() {
  const [list, statement] = await Promise.all([
    api.call("GET", `/v1/encounters?date=${todayLocal()}`),
    api.call("GET", `/v1/hospitals/me/statements?date=${todayUTC()}`),
  ]);
  state.today = list.encounters;
  state.statement = statement;
}

// -- views -----------------------------------------------------------------------------------

function loginView() {
  return h(
    "form",
    { class: "login", onsubmit: login, "data-testid": "login" },
    h("h1", {}, t("login.heading")),
    h("label", {}, t("login.client_id"), h("input", { name: "client_id", required: true, autocomplete: "username" })),
    h("label", {}, t("login.client_secret"), h("input", { name: "client_secret", type: "password", required: true, autocomplete: "current-password" })),
    h("p", { class: "muted" }, t("login.hint")),
    problemOf("login"),
    h("button", { type: "submit", disabled: busy.has("login") }, t("login.submit")),
  );
}

const DEPARTMENTS = ["internal", "surgery", "pediatrics", "emergency"];

function scanView() {
  const onKey = (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const code = event.target.value.trim();
    if (!code) return;
    // The option's value is the department's key, so the choice survives a language switch.
    const department = t(`dept.${root.querySelector("select[name=department]").value}`);
    event.target.value = "";
    openEncounter(code, department);
  };
  return h(
    "section",
    { class: "scan", "aria-labelledby": "scan-h" },
    h("h2", { id: "scan-h" }, t("scan.heading")),
    h(
      "div",
      { class: "row" },
      h("label", {}, t("scan.department"), h("select", { name: "department", onchange: () => root.querySelector("[name=code]")?.focus() }, DEPARTMENTS.map((d) => h("option", { value: d }, t(`dept.${d}`))))),
      h("label", {}, t("scan.code"), h("input", { name: "code", autocomplete: "off", placeholder: t("scan.placeholder"), onkeydown: onKey, disabled: busy.has("open"), "data-testid": "scan" })),
    ),
    problemOf("scan"),
  );
}

function encounterView() {
  const e = state.current;
  if (!e) return h("section", { "aria-labelledby": "enc-h" }, h("h2", { id: "enc-h" }, t("enc.heading")), h("p", { class: "muted" }, t("enc.none")));
  return h(
    "section",
    { "aria-labelledby": "enc-h", "data-testid": "encounter" },
    h("h2", { id: "enc-h" }, t("enc.heading")),
    h(
      "dl",
      {},
      h("dt", {}, t("enc.patient")), h("dd", { "data-testid": "patient" }, e.patient?.masked_name ?? "—"),
      h("dt", {}, t("enc.department")), h("dd", {}, e.department),
      h("dt", {}, t("enc.status")), h("dd", {}, h("span", { class: `badge ${e.status}`, "data-testid": "enc-status" }, t(`status.${e.status}`))),
      h("dt", {}, t("enc.hold")), h("dd", {}, yuan(e.hold_fen)),
    ),
    splitView(),
  );
}

const SEGMENTS = [
  "self_paid_items_fen",
  "current_account_fen",
  "self_segment_accumulated_fen",
  "self_segment_cash_fen",
  "fund_fen",
  "copay_accumulated_fen",
  "copay_cash_fen",
];

function quoteView() {
  const q = state.quote;
  if (!q) return h("p", { class: "muted" }, t("close.note"));
  return h(
    "div",
    { "data-testid": "quote" },
    h("h2", {}, t("quote.heading")),
    h(
      "dl",
      {},
      h("dt", {}, t("split.total")), h("dd", { "data-testid": "quote-total" }, yuan(q.total_fen)),
      SEGMENTS.flatMap((name) => [h("dt", {}, t(`seg.${name}`)), h("dd", { "data-testid": `quote-${name}` }, yuan(q.segments[name]))]),
      h("dt", {}, t("split.insurance")), h("dd", { "data-testid": "quote-insurance" }, yuan(q.insurance_fen)),
      h("dt", {}, t("quote.cash")), h("dd", { "data-testid": "quote-cash" }, yuan(q.cash_fen)),
    ),
  );
}

function splitView() {
  const s = state.settlement;
  if (!s) return quoteView();
  return h(
    "div",
    { "data-testid": "split" },
    h("h2", {}, t("split.heading")),
    h(
      "dl",
      {},
      h("dt", {}, t("split.total")), h("dd", { "data-testid": "split-total" }, yuan(s.total_fen)),
      h("dt", {}, t("split.insurance")), h("dd", { "data-testid": "split-insurance" }, yuan(s.insurance_fen)),
      h("dt", {}, t("split.self_pay")), h("dd", { "data-testid": "split-self" }, yuan(s.self_pay_fen)),
      h("dt", {}, t("split.status")), h("dd", {}, h("span", { class: `badge ${s.status}`, "data-testid": "settle-status" }, t(`settle.${s.status}`))),
    ),
  );
}

function chargeView() {
  const e = state.current;
  if (!e) return null;
  const open = e.status === "open";
  const total = state.lines.reduce((sum, l) => sum + l.amount_fen - l.refunded_fen, 0);
  const option = (prefix, value) => h("option", { value }, t(`${prefix}.${value}`));
  return h(
    "section",
    { class: "wide", "aria-labelledby": "charge-h" },
    h("h2", { id: "charge-h" }, t("charge.heading")),
    open
      ? h(
          "form",
          { class: "row", onsubmit: addCharge, "data-testid": "charge-form" },
          h("label", {}, t("charge.item_code"), h("input", { name: "item_code", required: true, maxlength: "64" })),
          h("label", {}, t("charge.name"), h("input", { name: "item_name", required: true, maxlength: "200" })),
          h("label", {}, t("charge.category"), h("select", { name: "category" }, ["drug", "exam", "treatment", "material"].map((c) => option("cat", c)))),
          h("label", {}, t("charge.quantity"), h("input", { name: "quantity", type: "number", min: "1", step: "1", value: "1", required: true })),
          h("label", {}, t("charge.unit_price"), h("input", { name: "unit_price", type: "number", min: "0", step: "0.01", required: true })),
          h("label", {}, t("charge.class"), h("select", { name: "insurance_class" }, ["A", "B", "C"].map((c) => option("class", c)))),
          h("button", { type: "submit", disabled: busy.has("charge") }, t("charge.add")),
        )
      : null,
    state.lines.length === 0
      ? h("p", { class: "muted" }, t("lines.empty"))
      : h(
          "table",
          { "data-testid": "lines" },
          h("thead", {}, h("tr", {}, [t("charge.item_code"), t("charge.name"), t("charge.category"), t("charge.class")].map((x) => h("th", {}, x)), h("th", { class: "num" }, t("charge.quantity")), h("th", { class: "num" }, t("charge.unit_price")), h("th", { class: "num" }, t("lines.amount")), h("th", { class: "num" }, t("lines.refunded")), h("th", {}, ""))),
          h(
            "tbody",
            {},
            state.lines.map((line) => {
              const action = `refund:${e.id}:${line.charge_id}`;
              return h(
                "tr",
                {},
                h("td", {}, line.item.item_code),
                h("td", {}, line.item.name),
                h("td", {}, t(`cat.${line.item.category}`)),
                h("td", {}, t(`class.${line.item.insurance_class}`)),
                h("td", { class: "num" }, line.item.quantity),
                h("td", { class: "num" }, yuan(line.item.unit_price_fen)),
                h("td", { class: "num" }, yuan(line.amount_fen)),
                h("td", { class: "num" }, line.refunded_fen ? yuan(line.refunded_fen) : "—"),
                h("td", {}, h("button", { class: "secondary", type: "button", disabled: busy.has(action) || line.refunded_fen >= line.amount_fen, onclick: () => refundLine(line) }, t("lines.refund"))),
              );
            }),
          ),
        ),
    h("div", { class: "totals" }, h("span", {}, t("totals.lines", { n: state.lines.length })), h("span", { "data-testid": "running-total" }, `${t("totals.charged")} ${yuan(total)}`)),
    state.notice ? h("p", { class: "notice", role: "status" }, state.notice) : null,
    problemOf("charge"),
    open ? h("button", { class: "secondary", type: "button", onclick: quoteEncounter, disabled: busy.has("quote") || state.lines.length === 0, "data-testid": "quote-button" }, t("quote.button")) : null,
    open ? h("button", { type: "button", onclick: closeEncounter, disabled: busy.has("close"), "data-testid": "close" }, t("close.button")) : null,
  );
}

function todayView() {
  return h(
    "section",
    { "aria-labelledby": "today-h", "data-testid": "today" },
    h("div", { class: "row" }, h("h2", { id: "today-h" }, t("today.heading")), h("button", { class: "secondary", type: "button", disabled: busy.has("today"), onclick: () => act("today", "today", refreshToday) }, t("today.refresh"))),
    problemOf("today"),
    state.today.length === 0
      ? h("p", { class: "muted" }, t("today.empty"))
      : h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", {}, t("today.time")), h("th", {}, t("enc.patient")), h("th", {}, t("enc.department")), h("th", {}, t("enc.status")), h("th", { class: "num" }, t("totals.charged")), h("th", {}, t("today.bill")))),
          h(
            "tbody",
            {},
            state.today.map((row) =>
              h(
                "tr",
                { "data-encounter": row.id },
                h("td", {}, new Date(row.opened_at).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" })),
                h("td", {}, row.patient.masked_name ?? "—"),
                h("td", {}, row.department),
                h("td", {}, h("span", { class: `badge ${row.status}` }, t(`status.${row.status}`))),
                h("td", { class: "num" }, yuan(row.bill ? row.bill.total_fen : row.charged_fen)),
                h("td", {}, row.bill ? h("span", { class: `badge ${row.bill.settlement_status}` }, `${t(`settle.${row.bill.settlement_status}`)} · ${t("split.insurance")} ${yuan(row.bill.insurance_fen)} · ${t("split.self_pay")} ${yuan(row.bill.self_pay_fen)}`) : "—"),
              ),
            ),
          ),
        ),
  );
}

function statementView() {
  const s = state.statement;
  if (!s) return null;
  return h(
    "section",
    { "aria-labelledby": "stmt-h", "data-testid": "statement" },
    h("h2", { id: "stmt-h" }, `${t("statement.heading")} · ${s.date} UTC`),
    h(
      "dl",
      {},
      h("dt", {}, t("statement.opened")), h("dd", { "data-testid": "stmt-opened" }, s.encounters_opened),
      h("dt", {}, t("statement.charges")), h("dd", {}, `${s.charges.count} · ${yuan(s.charges.amount_fen)}`),
      h("dt", {}, t("statement.settlements")), h("dd", { "data-testid": "stmt-settled" }, `${s.settlements.count} · ${yuan(s.settlements.amount_fen)}`),
      h("dt", {}, t("statement.insurance")), h("dd", {}, yuan(s.settlements.insurance_fen)),
      h("dt", {}, t("statement.self_pay")), h("dd", {}, yuan(s.settlements.self_pay_fen)),
      h("dt", {}, t("statement.refunds")), h("dd", { "data-testid": "stmt-refunds" }, `${s.refunds_before_settlement.count + s.refunds_after_settlement.count} · ${yuan(s.refunds_before_settlement.amount_fen + s.refunds_after_settlement.amount_fen)}`),
      h("dt", {}, t("statement.collected")), h("dd", {}, yuan(s.collected_fen)),
      h("dt", {}, t("statement.outstanding")), h("dd", {}, yuan(s.outstanding_fen)),
    ),
  );
}

function render() {
  document.title = t("title");
  const focusedName = document.activeElement?.name;
  const kept = {};
  for (const input of root.querySelectorAll("input, select")) kept[input.name] = input.value;
  const header = h(
    "header",
    {},
    h("h1", {}, t("title")),
    api.loggedIn() ? h("span", { class: "muted-light" }, api.clientId()) : null,
    h("button", { type: "button", onclick: () => { lang = lang === "zh-CN" ? "en" : "zh-CN"; localStorage.setItem(LANG_KEY, lang); document.documentElement.lang = lang; render(); } }, t("lang.switch")),
    api.loggedIn() ? h("button", { type: "button", onclick: () => { api.logout(); state.current = null; render(); } }, t("logout")) : null,
  );
  const body = api.loggedIn()
    ? h("main", {}, scanView(), encounterView(), chargeView(), todayView(), statementView())
    : loginView();
  root.replaceChildren(header, body);
  for (const input of root.querySelectorAll("input, select")) {
    if (input.name === "code" || !(input.name in kept)) continue;
    if (resetCharge && CHARGE_FIELDS.includes(input.name)) continue;
    input.value = kept[input.name];
  }
  if (resetCharge && root.querySelector("[name=item_code]")) {
    resetCharge = false;
    root.querySelector("[name=item_code]").focus();
    return;
  }
  const fallback = api.loggedIn() ? "code" : "client_id";
  const focus =
    (focusedName && root.querySelector(`[name="${focusedName}"]`)) ||
    root.querySelector(`[name="${fallback}"]`);
  if (focus && !focus.disabled) focus.focus();
}

render();
if (api.loggedIn()) act("today", "today", refreshToday);
