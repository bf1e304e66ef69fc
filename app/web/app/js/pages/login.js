// Phone + one-time code. In development the API returns the code as `debug_code`,
// which is shown as a hint. After login: the page the user came from, or identity.
import { t } from "../i18n.js";
import * as api from "../api.js";
import { h, once, field, fieldProblem, clearFieldProblems, notice, showProblem } from "../ui.js";

let timer = null;

export function enter(main, { go }) {
  const phone = field("login", "phone", t("login.phone"), {
    type: "tel", inputmode: "numeric", autocomplete: "tel", maxlength: "11", placeholder: t("login.phone.hint"),
  });
  const otp = field("login", "otp", t("login.otp"), { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "6" });
  const status = h("div", { class: "status", "aria-live": "polite" });
  if (sessionStorage.getItem("suishen.expired")) status.append(notice("warn", t("login.expired")));
  const send = h("button", { type: "button", id: "send-otp", class: "secondary" }, t("login.send"));
  const submit = h("button", { type: "submit", id: "login-submit" }, t("login.submit"));

  once(send, async () => {
    clearFieldProblems(phone, otp);
    try {
      const sent = await api.api("POST", "/v1/auth/otp", { body: { phone: phone.input.value.trim() }, auth: false });
      status.replaceChildren(notice("ok", t("login.sent")));
      if (sent.debug_code) status.append(h("p", { class: "hint", id: "debug-code" }, t("login.debug", { code: sent.debug_code })));
      countdown(send, sent.resend_after || 60);
    } catch (problem) {
      if (problem.code === "phone_invalid" || problem.code === "validation_failed") fieldProblem(phone, problem);
      else showProblem(status, problem);
    }
  });
  const form = h("form", { class: "card", novalidate: true }, h("h1", {}, t("login.heading")), phone.wrap,
    h("div", { class: "row" }, send), otp.wrap, submit, status);
  once(submit, async () => {
    clearFieldProblems(phone, otp);
    try {
      await api.login(phone.input.value.trim(), otp.input.value.trim());
    } catch (problem) {
      if (problem.code === "otp_invalid" || problem.code === "validation_failed") fieldProblem(otp, problem);
      else showProblem(status, problem);
      return;
    }
    sessionStorage.removeItem("draft.login.otp");
    sessionStorage.removeItem("suishen.expired");
    const next = sessionStorage.getItem("suishen.next");
    sessionStorage.removeItem("suishen.next");
    if (next && next !== "login") return go(next);
    const me = await api.api("GET", "/v1/residents/me");
    go(me.identity_bound ? "code" : "me");
  });
  main.append(form);
}

function countdown(button, seconds) {
  clearInterval(timer);
  let left = seconds;
  const label = button.textContent;
  const tick = () => {
    if (!button.isConnected || left <= 0) {
      clearInterval(timer);
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.disabled = true;
    button.textContent = t("login.resend", { s: left });
    left -= 1;
  };
  setTimeout(() => {
    tick();
    timer = setInterval(tick, 1000);
  }, 0);
}

export function leave() {
  clearInterval(timer);
}
