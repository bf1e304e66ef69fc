// Booking a visit: venues, a venue's slots by day with places left, the party rules
// shown before booking, booking for self and family, my bookings with cancel.
import { t, time, dateTime } from "../i18n.js";
import * as api from "../api.js";
import { h, once, notice, showProblem, paged } from "../ui.js";

let venue = null;

function shanghaiDay(offset = 0) {
  const d = new Date(Date.now() + 8 * 3600_000 + offset * 86400_000);
  return d.toISOString().slice(0, 10);
}

export async function enter(main) {
  const status = h("div", { class: "status", id: "book-status", "aria-live": "polite" });
  const venues = h("section", { class: "card", id: "venues" }, h("h2", {}, t("book.venues")));
  const slots = h("section", { class: "card", id: "slots", hidden: true });
  const mine = h("section", { class: "card", id: "my-bookings" }, h("h2", {}, t("book.mine")));
  main.append(h("h1", {}, t("book.heading")), status, venues, slots, mine);
  let list, me;
  try {
    [list, me] = await Promise.all([api.api("GET", "/v1/venues"), api.api("GET", "/v1/residents/me")]);
  } catch (problem) {
    return showProblem(status, problem);
  }
  venues.append(paged(list.items, (v) => {
    const button = h("button", { type: "button", class: "venue", "data-venue": v.id },
      h("strong", {}, v.name), h("span", {}, `${v.district} · ${t("book.capacity", { n: v.capacity })}`));
    button.addEventListener("click", () => {
      venue = v;
      showSlots(slots, status, me, mine, shanghaiDay(0));
    });
    return h("li", {}, button);
  }));
  if (venue) showSlots(slots, status, me, mine, shanghaiDay(0));
  await showMine(mine, status);
}

async function showSlots(section, status, me, mine, day) {
  section.hidden = false;
  const days = h("div", { class: "days", role: "group", "aria-label": t("book.choose_day") },
    [0, 1, 2, 3, 4, 5, 6].map((i) => {
      const d = shanghaiDay(i);
      const b = h("button", { type: "button", class: "chip", "data-day": d, "aria-pressed": String(d === day) }, d.slice(5));
      b.addEventListener("click", () => showSlots(section, status, me, mine, d));
      return b;
    }));
  section.replaceChildren(h("h2", {}, `${venue.name} · ${t("book.slots")}`), days, h("p", {}, t("common.loading")));
  let body;
  try {
    body = await api.api("GET", `/v1/venues/${encodeURIComponent(venue.id)}/slots?day=${day}`);
  } catch (problem) {
    return showProblem(status, problem);
  }
  const rules = body.rules || { max_party: 5, booking_opens_days: 7 };
  const party = h("fieldset", { class: "party" }, h("legend", {}, t("book.party")),
    me.dependents.map((d) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "dependent", value: d.dependent_id }), `${d.masked_name} · ${t(`relation.${d.relation}`)}`)));
  const count = h("p", { class: "party-count", id: "party-count" }, t("book.party_count", { n: 1 }));
  party.addEventListener("change", () => {
    const chosen = party.querySelectorAll("input:checked").length + 1;
    count.textContent = t("book.party_count", { n: chosen });
    count.classList.toggle("over", chosen > rules.max_party);
  });
  const rulesText = h("p", { class: "rules", id: "booking-rules" }, t("book.rules", { max: rules.max_party, days: rules.booking_opens_days }));
  const items = body.items.filter((s) => Date.parse(s.ends_at) > Date.now());
  const slotList = items.length
    ? paged(items, (s) => {
        const label = `${time(s.starts_at)}–${time(s.ends_at)}`;
        const left = s.available > 0 ? t("book.places_left", { n: s.available }) : t("book.full");
        const button = h("button", { type: "button", class: "book", "data-slot": s.id }, t("book.submit", { time: label }));
        once(button, async () => {
          status.replaceChildren();
          const dependents = [...party.querySelectorAll("input:checked")].map((i) => i.value);
          try {
            await api.api("POST", "/v1/reservations", { body: { slot_id: s.id, dependents } });
            status.replaceChildren(notice("ok", t("book.done", { venue: venue.name, time: label })));
            await showMine(mine, status);
          } catch (problem) {
            showProblem(status, problem);
          }
        });
        return h("li", { class: "slot" }, h("span", { class: "places" }, left), button);
      }, 8, 3)
    : h("p", {}, t("book.no_slots"));
  section.replaceChildren(h("h2", {}, `${venue.name} · ${t("book.slots")}`), days, rulesText, party, count, slotList);
}

async function showMine(section, status) {
  let body;
  try {
    body = await api.api("GET", "/v1/residents/me/reservations");
  } catch (problem) {
    return showProblem(status, problem);
  }
  const content = body.items.length
    ? paged(body.items, (r) => {
        const row = h("li", { class: `booking ${r.status}`, "data-reservation": r.id },
          h("strong", {}, r.venue_name),
          h("span", {}, `${dateTime(r.starts_at)}–${time(r.ends_at)} · ${t("book.people", { n: r.party_size })}`),
          h("span", { class: "badge" }, t(`reservation.${r.status}`)));
        if (r.cancellable) {
          const cancel = h("button", { type: "button", class: "secondary cancel" }, t("book.cancel"));
          once(cancel, async () => {
            try {
              await api.api("DELETE", `/v1/reservations/${encodeURIComponent(r.id)}`);
              status.replaceChildren(notice("ok", t("book.cancelled_ok")));
              await showMine(section, status);
            } catch (problem) {
              showProblem(status, problem);
            }
          });
          row.append(cancel);
        }
        return row;
      }, 6, 2)
    : h("p", {}, t("common.none"));
  section.replaceChildren(h("h2", {}, t("book.mine")), content);
}

export function leave() {}
