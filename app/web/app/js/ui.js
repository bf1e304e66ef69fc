// Small DOM helpers shared by the pages: elements, problems as sentences, buttons that
// send one request however often they are tapped, drafts kept across a re-login.
import { t } from "./i18n.js";
import { ApiProblem } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// The sentence for a problem, keyed by its code; never the raw JSON.
export function problemText(problem) {
  const code = problem instanceof ApiProblem ? problem.code : "unknown";
  const key = `problem.${code}`;
  const text = t(key);
  return text === key ? t("problem.unknown") : text;
}

export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// Replace the message shown in `slot` (an element) with the problem's sentence.
export function showProblem(slot, problem) {
  slot.replaceChildren(notice("error", problemText(problem)));
}

// Run `action` once per tap: the button is disabled (and aria-busy) while in flight.
export function once(button, action) {
  let busy = false;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await action(event);
    } finally {
      busy = false;
      if (button.isConnected) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    }
  });
  return button;
}

// A labelled input whose value survives a trip to the login page (sessionStorage).
export function field(draftKey, name, label, attrs = {}) {
  const id = `${draftKey}-${name}`;
  const stored = sessionStorage.getItem(`draft.${draftKey}.${name}`);
  const input = h("input", { id, name, ...attrs });
  if (stored !== null) input.value = stored;
  input.addEventListener("input", () => sessionStorage.setItem(`draft.${draftKey}.${name}`, input.value));
  const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  input.setAttribute("aria-describedby", error.id);
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), input, error);
  return { wrap, input, error };
}

export function clearDraft(draftKey) {
  for (const key of Object.keys(sessionStorage)) {
    if (key.startsWith(`draft.${draftKey}.`)) sessionStorage.removeItem(key);
  }
}

export function fieldProblem(field, problem) {
  field.error.textContent = problemText(problem);
  field.input.setAttribute("aria-invalid", "true");
}

export function clearFieldProblems(...fields) {
  for (const f of fields) {
    f.error.textContent = "";
    f.input.removeAttribute("aria-invalid");
  }
}

export function isElder() {
  return document.documentElement.classList.contains("elder");
}

// Fewer items per screen in elder mode: a list shows a page and a "show more" button.
export function paged(items, render, normal = 8, elder = 3) {
  const list = h("ul", { class: "list" });
  let shown = 0;
  const size = isElder() ? elder : normal;
  const more = h("button", { type: "button", class: "secondary more" }, t("common.more"));
  function next() {
    for (const item of items.slice(shown, shown + size)) list.append(render(item));
    shown += size;
    more.hidden = shown >= items.length;
  }
  more.addEventListener("click", next);
  next();
  return h("div", {}, list, more);
}
