// The string catalogues: zh-CN by default, English on request, remembered on the device.
import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

const CATALOGUES = { "zh-CN": zh, en };
const KEY = "suishen.lang";
let lang = CATALOGUES[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "zh-CN";

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = CATALOGUES[next] ? next : "zh-CN";
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
}

export function has(key) {
  return key in CATALOGUES[lang];
}

// t("book.places_left", {n: 3}) -> "余 3 个"; a missing key shows itself, never blank.
export function t(key, vars = {}) {
  const text = CATALOGUES[lang][key] ?? CATALOGUES["zh-CN"][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function yuan(fen) {
  return t("common.yuan", { amount: (fen / 100).toFixed(2) });
}

export function time(iso) {
  return new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", timeZone: "Asia/Shanghai" });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(lang, {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZone: "Asia/Shanghai",
  });
}

document.documentElement.lang = lang;
