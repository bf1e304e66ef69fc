// Real-name binding (errors beside the field, in the user's language, keyed by the
// problem's code), family members (亲友) and logout.
import { t } from "../i18n.js";
import * as api from "../api.js";
import { h, once, field, fieldProblem, clearFieldProblems, clearDraft, notice, showProblem } from "../ui.js";

const FIELD_OF = {
  id_number_invalid: "id_number",
  identity_taken: "id_number",
  identity_mismatch: "id_number",
  name_invalid: "name",
};

function placeProblem(problem, fields, status) {
  let target = fields[FIELD_OF[problem.code]];
  if (!target && problem.code === "validation_failed") {
    const first = (problem.body.errors || [])[0];
    target = first && fields[first.field];
  }
  if (target) fieldProblem(target, problem);
  else showProblem(status, problem);
}

export async function enter(main, { go }) {
  const status = h("div", { class: "status", "aria-live": "polite" });
  main.append(h("h1", {}, t("me.heading")), status);
  let me;
  try {
    me = await api.api("GET", "/v1/residents/me");
  } catch (problem) {
    return showProblem(status, problem);
  }
  main.append(h("p", { id: "phone" }, t("me.phone", { phone: me.phone })));
  if (me.identity_bound) {
    main.append(h("p", { class: "card", id: "identity-bound" }, t("identity.bound", { name: me.masked_name, id: me.masked_id_number })));
    main.append(dependents(me));
  } else {
    main.append(identityForm(go));
  }
  const out = h("button", { type: "button", id: "logout", class: "secondary" }, t("logout"));
  once(out, async () => {
    await api.logout().catch(() => {});
    go("login");
  });
  main.append(out);
}

function identityForm(go) {
  const name = field("identity", "name", t("identity.name"), { autocomplete: "name", maxlength: "30" });
  const idNumber = field("identity", "id_number", t("identity.id_number"), { maxlength: "18", autocapitalize: "characters" });
  const status = h("div", { class: "status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", id: "identity-submit" }, t("identity.submit"));
  once(submit, async () => {
    clearFieldProblems(name, idNumber);
    status.replaceChildren();
    try {
      await api.api("PUT", "/v1/residents/me/identity", {
        body: { name: name.input.value.trim(), id_number: idNumber.input.value.trim().toUpperCase() },
      });
    } catch (problem) {
      return placeProblem(problem, { name, id_number: idNumber }, status);
    }
    clearDraft("identity");
    go("code");
  });
  return h("form", { class: "card", id: "identity-form", novalidate: true },
    h("h2", {}, t("identity.heading")), h("p", {}, t("identity.intro")), name.wrap, idNumber.wrap, submit, status);
}

function dependents(me) {
  const list = h("ul", { class: "list", id: "dependents" },
    me.dependents.map((d) => h("li", {}, `${d.masked_name} · ${t(`relation.${d.relation}`)}`)));
  const name = field("dependent", "name", t("dependents.name"), { maxlength: "30" });
  const idNumber = field("dependent", "id_number", t("dependents.id_number"), { maxlength: "18" });
  const relation = h("select", { id: "dependent-relation", name: "relation" },
    ["child", "parent", "spouse", "other"].map((r) => h("option", { value: r }, t(`relation.${r}`))));
  const status = h("div", { class: "status", "aria-live": "polite" });
  const add = h("button", { type: "submit", id: "dependent-add" }, t("dependents.add"));
  once(add, async () => {
    clearFieldProblems(name, idNumber);
    status.replaceChildren();
    try {
      const added = await api.api("POST", "/v1/residents/me/dependents", {
        body: { name: name.input.value.trim(), id_number: idNumber.input.value.trim().toUpperCase(), relation: relation.value },
      });
      list.append(h("li", {}, `${added.masked_name} · ${t(`relation.${added.relation}`)}`));
      status.replaceChildren(notice("ok", t("dependents.added", { name: added.masked_name })));
      clearDraft("dependent");
      name.input.value = "";
      idNumber.input.value = "";
    } catch (problem) {
      placeProblem(problem, { name, id_number: idNumber }, status);
    }
  });
  return h("section", { class: "card" }, h("h2", {}, t("dependents.heading")), h("p", {}, t("dependents.intro")), list,
    h("form", { novalidate: true }, name.wrap, idNumber.wrap,
      h("div", { class: "field" }, h("label", { for: "dependent-relation" }, t("dependents.relation")), relation), add, status));
}

export function leave() {}
