// Paying after treatment: enrol with a payment method, available credit, bills with
// their lines, the insurance split and status, paying a `payment_pending` bill (one
// request per tap, with an Idempotency-Key), and the visits history.
import { t, yuan, dateTime } from "../i18n.js";
import * as api from "../api.js";
import { h, once, notice, showProblem, paged } from "../ui.js";

const METHODS = ["pm_sandbox_ok", "pm_sandbox_declined", "pm_sandbox_insufficient"];

function methodSelect(id) {
  return h("select", { id, name: "payment_method" }, METHODS.map((m) => h("option", { value: m }, t(`pm.${m}`))));
}

export async function enter(main) {
  const status = h("div", { class: "status", id: "pay-status", "aria-live": "polite" });
  const credit = h("section", { class: "card", id: "credit" });
  const bills = h("section", { class: "card", id: "bills" }, h("h2", {}, t("pay.bills")));
  const visits = h("section", { class: "card", id: "visits" }, h("h2", {}, t("pay.visits")));
  main.append(h("h1", {}, t("pay.heading")), status, credit, bills, visits);
  await Promise.all([showCredit(credit, status, bills), showBills(bills, status), showVisits(visits)]);
}

async function showCredit(section, status, bills) {
  let account = null;
  try {
    account = await api.api("GET", "/v1/credit/me");
  } catch (problem) {
    if (problem.code !== "not_enrolled") return showProblem(status, problem);
  }
  if (account) {
    section.replaceChildren(
      h("h2", {}, t("pay.heading")),
      h("p", { class: "big", id: "available" }, t("pay.credit", { available: yuan(account.available_fen), limit: yuan(account.limit_fen) })),
      h("p", {}, t("pay.method_current", { method: t(`pm.${account.payment_method}`) })),
    );
    return;
  }
  const select = methodSelect("enrol-method");
  const enrol = h("button", { type: "submit", id: "enrol" }, t("pay.enrol"));
  once(enrol, async () => {
    try {
      await api.api("POST", "/v1/credit/enroll", { body: { payment_method: select.value } });
      await showCredit(section, status, bills);
    } catch (problem) {
      showProblem(status, problem);
    }
  });
  section.replaceChildren(h("h2", {}, t("pay.enrol.heading")), h("p", {}, t("pay.enrol.intro")),
    h("form", { novalidate: true }, h("div", { class: "field" }, h("label", { for: "enrol-method" }, t("pay.method")), select), enrol));
}

async function showBills(section, status) {
  let body;
  try {
    body = await api.api("GET", "/v1/bills");
  } catch (problem) {
    if (problem.code === "not_enrolled") return section.replaceChildren(h("h2", {}, t("pay.bills")), h("p", {}, t("pay.no_bills")));
    return showProblem(status, problem);
  }
  const list = body.bills.length
    ? paged(body.bills, (bill) => billRow(bill, section, status), 5, 2)
    : h("p", {}, t("pay.no_bills"));
  section.replaceChildren(h("h2", {}, t("pay.bills")), list);
}

function billRow(bill, section, status) {
  const lines = h("details", { class: "lines" }, h("summary", {}, t("pay.lines")));
  lines.addEventListener("toggle", async () => {
    if (!lines.open || lines.dataset.loaded) return;
    lines.dataset.loaded = "1";
    try {
      const full = bill.lines ? bill : await api.api("GET", `/v1/bills/${encodeURIComponent(bill.id)}`);
      lines.append(h("ul", {}, (full.lines || []).map((l) =>
        h("li", {}, t("pay.line", { name: l.name, qty: l.quantity, amount: yuan(l.amount_fen), ins: yuan(l.insurance_fen) })))));
    } catch (problem) {
      showProblem(status, problem);
    }
  });
  const row = h("li", { class: `bill ${bill.status}`, "data-bill": bill.id },
    h("div", { class: "bill-head" }, h("strong", {}, dateTime(bill.created_at)), h("span", { class: "badge" }, t(`bill.${bill.status}`))),
    h("p", {}, t("pay.bill.total", { amount: yuan(bill.total_fen) })),
    h("p", {}, t("pay.bill.insurance", { amount: yuan(bill.insurance_fen) }), " · ", t("pay.bill.self", { amount: yuan(bill.self_pay_fen) })),
    lines);
  if (bill.status === "payment_pending" || bill.status === "overdue") {
    row.append(h("p", { class: "due" }, t("pay.bill.outstanding", { amount: yuan(bill.outstanding_fen) }), " · ",
      t("pay.bill.due", { date: dateTime(bill.due_at) })));
    const select = methodSelect(`pay-method-${bill.id}`);
    const pay = h("button", { type: "button", class: "pay" }, t("pay.pay", { amount: yuan(bill.outstanding_fen) }));
    const keys = {}; // one Idempotency-Key per bill and method: a retry is the same payment
    once(pay, async () => {
      const key = (keys[select.value] ??= api.newKey());
      try {
        await api.api("POST", `/v1/bills/${encodeURIComponent(bill.id)}/pay`, {
          body: { payment_method: select.value },
          headers: { "Idempotency-Key": key },
        });
        status.replaceChildren(notice("ok", t("pay.paid_ok")));
        await showBills(section, status);
      } catch (problem) {
        showProblem(status, problem);
      }
    });
    row.append(h("div", { class: "field" }, h("label", { for: select.id }, t("pay.method")), select), pay);
  }
  return row;
}

async function showVisits(section) {
  let body;
  try {
    body = await api.api("GET", "/v1/residents/me/visits");
  } catch (problem) {
    return section.replaceChildren(h("h2", {}, t("pay.visits")), h("p", {}, t("pay.no_visits")));
  }
  section.replaceChildren(h("h2", {}, t("pay.visits")), body.items.length
    ? paged(body.items, (v) => h("li", {}, `${dateTime(v.at)} · ${v.venue_name} · ${t(`visit.${v.kind}`)}`), 8, 3)
    : h("p", {}, t("pay.no_visits")));
}

export function leave() {}
