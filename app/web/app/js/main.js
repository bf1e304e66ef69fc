// The shell: header (language, elder mode), navigation, the offline banner, and a
// hash router (#/code, #/book, #/pay, #/me, #/login) that sends an expired session to
// the login page and back to where it was.
import { t, language, setLanguage } from "./i18n.js";
import * as api from "./api.js";
import { h } from "./ui.js";
import * as login from "./pages/login.js";
import * as me from "./pages/me.js";
import * as code from "./pages/code.js";
import * as book from "./pages/book.js";
import * as pay from "./pages/pay.js";

const PAGES = { login, me, code, book, pay };
const NAV = ["code", "book", "pay", "me"];
const ELDER = "suishen.elder";
let current = null;

const root = document.getElementById("root");

function applyElder() {
  document.documentElement.classList.toggle("elder", localStorage.getItem(ELDER) === "1");
}

export function go(route) {
  if (location.hash === `#/${route}`) render();
  else location.hash = `#/${route}`;
}

function routeName() {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0];
  return PAGES[name] ? name : api.session() ? "code" : "login";
}

let offlineNow = !navigator.onLine;
function banner() {
  return h("div", { id: "offline", class: "offline-banner", role: "alert", hidden: !offlineNow }, t("offline.banner"));
}

function setOffline(value) {
  offlineNow = value;
  const el = document.getElementById("offline");
  if (el) el.hidden = !value;
  document.documentElement.classList.toggle("is-offline", value);
  current?.onNetwork?.(!value);
}

function header(name) {
  const elderOn = localStorage.getItem(ELDER) === "1";
  const elderButton = h(
    "button",
    { type: "button", id: "elder-toggle", class: "chip", "aria-pressed": String(elderOn) },
    elderOn ? t("toggle.elder.off") : t("toggle.elder.on"),
  );
  elderButton.addEventListener("click", () => {
    localStorage.setItem(ELDER, elderOn ? "0" : "1");
    applyElder();
    render();
  });
  const langButton = h("button", { type: "button", id: "lang-toggle", class: "chip", lang: language() === "en" ? "zh-CN" : "en" }, t("toggle.lang"));
  langButton.addEventListener("click", () => {
    setLanguage(language() === "en" ? "zh-CN" : "en");
    render();
  });
  const nav =
    name === "login"
      ? null
      : h(
          "nav",
          { class: "tabs", "aria-label": t("app.title") },
          NAV.map((page) =>
            h("a", { href: `#/${page}`, class: "tab", "aria-current": page === name ? "page" : false }, t(`nav.${page}`)),
          ),
        );
  return h(
    "header",
    { class: "top" },
    h("a", { class: "skip", href: "#main" }, t("app.skip")),
    h("div", { class: "bar" }, h("span", { class: "brand" }, t("app.title")), h("div", { class: "toggles" }, elderButton, langButton)),
    nav,
  );
}

function render() {
  current?.leave?.();
  const name = routeName();
  if (name !== "login" && !api.session()) {
    sessionStorage.setItem("suishen.next", name);
    return go("login");
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  root.replaceChildren(header(name), banner(), main);
  document.title = `${t(`nav.${name === "login" ? "code" : name}`)} · ${t("app.title")}`;
  current = PAGES[name];
  current.enter(main, { go, online: !offlineNow });
}

// A session that cannot be renewed: back to login, remembering the page (its drafts
// stay in sessionStorage), and return there after logging in.
api.on("expired", () => {
  const name = routeName();
  if (name !== "login") sessionStorage.setItem("suishen.next", name);
  sessionStorage.setItem("suishen.expired", "1");
  api.forget();
  go("login");
});
api.on("network", (ok) => {
  if (ok === offlineNow) setOffline(!ok);
});
window.addEventListener("offline", () => setOffline(true));
window.addEventListener("online", () => setOffline(false));
window.addEventListener("hashchange", render);

applyElder();
api.scheduleRefresh();
render();
