/* The timeline beside an answer: GET /v1/timeline for the question just answered (same options
   and filters), drawn as dated events oldest first, each quote opening its span in the article
   panel, and the stories the events belong to with their sources.

   Invariant: like everything on this page, text from the server is only inserted as text. A
   newer question replaces an older one's timeline, never the other way round (`generation`). */

import { getJson } from "./api.js";
import { $, el, fmt, put } from "./dom.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
let generation = 0;

/** An event date for people: "3 Aug 2023", "Feb 2022", "week 9 of 2024", "2023". */
function eventDate(iso) {
  let m;
  if ((m = /^(\d{4})-(\d\d)-(\d\d)$/.exec(iso))) return `${Number(m[3])} ${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
  if ((m = /^(\d{4})-(\d\d)$/.exec(iso))) return `${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
  if ((m = /^(\d{4})-W(\d\d)$/.exec(iso))) return `week ${Number(m[2])} of ${m[1]}`;
  return iso;
}

/** The /v1/timeline query string for an /v1/ask body (question, mode, filters, as_of). */
function timelineParams(body) {
  const params = new URLSearchParams({ q: body.question });
  if (body.mode) params.set("mode", body.mode);
  const f = body.filters || {};
  for (const id of f.doc_ids || []) params.append("doc_id", id);
  for (const s of f.sources || []) params.append("source", s);
  if (f.date_from) params.set("date_from", f.date_from);
  if (f.date_to) params.set("date_to", f.date_to);
  if (body.as_of) params.set("as_of", body.as_of);
  return params;
}

function eventItem(e, sourcesOf, on) {
  const how = e.event_date_basis === "relative" && e.relative
    ? `“${e.relative.text}” in an article of ${fmt.date(e.date)}`
    : `published ${fmt.date(e.date)}`;
  const copies = e.also_in.map((a) => a.source || a.doc_id);
  const others = (sourcesOf.get(e.story) || []).filter((s) => s !== e.source && !copies.includes(s));
  return el("li", { class: "event", "data-story": e.story },
    el("time", { class: "event-date", datetime: e.event_date, text: eventDate(e.event_date) }),
    el("div", { class: "event-body" },
      el("p", { class: "event-quote", text: e.quote }),
      el("p", { class: "meta" },
        el("button", { type: "button", class: "link",
          "aria-label": `Show in article: ${e.title}, ${e.source || "source not stated"}`,
          onclick: () => on.span(e.doc_id, { start: e.start, end: e.end, expected: e.quote, label: "Timeline event" }),
        }, e.source || "source not stated"),
        ` · ${how}`,
        copies.length ? ` · also in ${copies.join(", ")}` : "",
        others.length ? ` · story also reported by ${others.join(", ")}` : "")));
}

function storyItem(s, on) {
  const days = [...new Set([s.first_date, s.last_date].filter(Boolean))].map((d) => fmt.date(d));
  const reports = `${s.articles} report${s.articles === 1 ? "" : "s"}, ${s.doc_ids.length} article${s.doc_ids.length === 1 ? "" : "s"}`;
  return el("li", { class: "story" },
    el("p", { class: "story-title", text: s.title }),
    el("p", { class: "meta", text: [days.join(" – ") || "undated", reports].join(" · ") }),
    el("ul", { class: "story-sources", "aria-label": `Sources of ${s.title}` },
      s.members.map((m) => el("li", {},
        el("button", { type: "button", class: "link", "aria-label": `Open ${m.title} (${m.source || "source not stated"})`,
          onclick: () => on.span(m.doc_id, null) }, m.source || "source not stated"),
        ` · ${fmt.date(m.date, null, "undated")}`,
        m.copy_of ? " · republished copy" : ""))));
}

function render(t, on) {
  const sourcesOf = new Map(t.stories.map((s) => [s.id, s.sources]));
  put($("timeline"), t.events.map((e) => eventItem(e, sourcesOf, on)));
  const undated = t.undated.length;
  const said = t.events.length
    ? `${t.events.length} dated event${t.events.length === 1 ? "" : "s"}, oldest first.`
    : "No dated events in the articles for this question.";
  $("timeline-status").textContent = undated
    ? `${said} ${undated} more from articles without a full date are not placed.` : said;
  put($("stories"), t.stories.map((s) => storyItem(s, on)));
  $("stories-block").hidden = t.stories.length === 0;
}

/** Draw the timeline of the question in `body` (an /v1/ask request body). */
export async function loadTimeline(body, on) {
  const mine = ++generation;
  const card = $("timeline-card");
  card.hidden = false;
  card.setAttribute("aria-busy", "true");
  $("timeline").replaceChildren();
  $("stories-block").hidden = true;
  $("timeline-status").textContent = "Placing the events in time…";
  try {
    const t = await getJson(`/v1/timeline?${timelineParams(body)}`);
    if (mine !== generation) return;
    render(t, on);
  } catch (err) {
    if (mine !== generation) return;
    $("timeline-status").textContent = `The timeline could not be loaded: ${err.message}`;
  } finally {
    if (mine === generation) card.removeAttribute("aria-busy");
  }
}

/** Hide the timeline (a new question, or none). */
export function clearTimeline() {
  generation += 1;
  $("timeline-card").hidden = true;
  $("timeline").replaceChildren();
  $("stories").replaceChildren();
}
