/* Drawing an Answer: the short answer, the text with [n] links, citations and passages.
   `on.cite(n, fromClick)` opens citation n; `on.span(docId, span)` shows a span in its article. */

import { el, fmt, put, $ } from "./dom.js";

/** The short answer in either shape: a string with short_answer_doc_id/_start/_end beside it,
    or an object {text, doc_id, start, end}. Null when the answer has none. */
export function shortAnswerOf(answer) {
  const s = answer.short_answer;
  if (s === null || s === undefined || s === "") return null;
  if (typeof s === "object") {
    const text = s.text ?? s.quote ?? s.answer;
    return text ? { text: String(text), doc_id: s.doc_id ?? null, start: s.start ?? null, end: s.end ?? null } : null;
  }
  return { text: String(s), doc_id: answer.short_answer_doc_id ?? null,
    start: answer.short_answer_start ?? null, end: answer.short_answer_end ?? null };
}

function citeHref(c) {
  const params = new URLSearchParams({ view: "documents", open: c.doc_id, start: c.start, end: c.end });
  return `/?${params}`;
}

function citeLink(c, on) {
  return el("a", { class: "cite", href: citeHref(c), "data-n": c.n,
    "aria-label": `[${c.n}] ${c.title}`,
    onclick: (e) => { e.preventDefault(); on.cite(c.n, true); },
    onfocus: () => on.cite(c.n, false) }, `[${c.n}]`);
}

/** Answer text with [n] markers as links and the short answer (if any) emphasised. */
function answerNodes(text, citations, short, on) {
  const byN = new Map(citations.map((c) => [String(c.n), c]));
  const nodes = [];
  let shortLeft = short ? short.text : null;
  for (const part of text.split(/(\[\d+\])/)) {
    const m = /^\[(\d+)\]$/.exec(part);
    if (m && byN.has(m[1])) { nodes.push(citeLink(byN.get(m[1]), on)); continue; }
    const at = shortLeft ? part.indexOf(shortLeft) : -1;
    if (at >= 0) {
      nodes.push(part.slice(0, at), el("strong", { class: "short-in-answer", text: shortLeft }),
        part.slice(at + shortLeft.length));
      shortLeft = null;
    } else if (part) {
      nodes.push(part);
    }
  }
  return nodes;
}

function renderShortAnswer(short, answer, on) {
  const box = $("short-answer");
  if (!short || answer.abstained) { box.hidden = true; return; }
  const canOpen = short.doc_id && Number.isInteger(short.start) && Number.isInteger(short.end);
  put(box,
    el("span", { class: "label", text: "Short answer" }),
    el("span", { class: "text", text: short.text }),
    canOpen ? el("button", { type: "button", class: "link",
      onclick: () => on.span(short.doc_id,
        { start: short.start, end: short.end, expected: short.text, label: "Short answer" }) }, "show in article") : null,
  );
  box.hidden = false;
}

export function renderAnswer(answer, on) {
  const card = $("answer-card");
  card.classList.toggle("abstained", !!answer.abstained);
  $("answer-title").textContent = answer.abstained ? "No answer in the articles" : "Answer";
  const short = shortAnswerOf(answer);
  renderShortAnswer(short, answer, on);
  const text = $("answer-text");
  if (answer.abstained) {
    put(text, el("span", { class: "abstain-title", text: "The articles don't say." }),
      "\n", answer.answer);
  } else {
    put(text, answerNodes(answer.answer, answer.citations, short, on));
  }
  const meta = [`${answer.mode}`, answer.answerer || "extractive"];
  if (typeof answer.confidence === "number" && answer.answerer !== "llm") meta.push(`confidence ${answer.confidence.toFixed(2)}`);
  if (answer.timings && answer.timings.total) meta.push(fmt.ms(answer.timings.total));
  if (answer.fallback) meta.push(`LLM unavailable, extractive answer shown (${answer.fallback_reason || "no reason given"})`);
  if (answer.as_of) meta.push(`as of ${answer.as_of}`);
  if (answer.period) meta.push(`period ${answer.period.since || "…"} to ${answer.period.until || "…"}`);
  $("answer-meta").textContent = meta.join(" · ");
  renderCitations(answer.citations, answer.answer, on);
}

/** One line per citation; the quote too when the answer does not already say it word for word
    (an LLM's paraphrase), so extractive answers are not printed twice. */
function renderCitations(citations, answerText, on) {
  const list = $("citations");
  const flat = (t) => t.replace(/\s+/g, " ");
  // resolved relative days written into the text ("Thursday (2024-02-08)") are not the quote's
  const said = flat(answerText).replace(/ \((?:the week of )?\d{4}(?:-[\dW]+)*\)/g, "");
  list.replaceChildren(...citations.map((c) => el("li", { id: `cite-${c.n}`, "data-n": c.n },
    el("div", { class: "passage-head" }, citeLink(c, on), el("span", { text: c.title })),
    el("p", { class: "meta", text: [c.earlier ? "earlier" : null, c.source || "source not stated", c.date, c.doc_id,
      `characters ${fmt.int(c.start)}–${fmt.int(c.end)}`, `score ${fmt.score(c.score)}`].filter(Boolean).join(" · ") }),
    said.includes(flat(c.quote)) ? null : el("blockquote", { text: c.quote }))));
  $("citations-block").hidden = citations.length === 0;
}

export function renderPassages(passages, abstained, on) {
  $("passages-title").textContent = abstained ? "Closest passages" : "Supporting passages";
  const top = Math.max(...passages.map((p) => p.score), 1e-9);
  const items = passages.map((p) => {
    const sub = [];
    if (p.dense_score !== null && p.dense_score !== undefined) sub.push(`dense ${fmt.score(p.dense_score)}`);
    if (p.bm25_score !== null && p.bm25_score !== undefined) sub.push(`BM25 ${fmt.score(p.bm25_score)}`);
    const width = Math.max(4, Math.round((p.score / top) * 64));
    return el("li", {},
      el("div", { class: "passage-head" },
        el("button", { type: "button", class: "link", "aria-label": `Passage ${p.rank}: ${p.title}, show in article`,
          onclick: () => on.span(p.doc_id,
            { start: p.start, end: p.end, expected: p.text, label: `Passage ${p.rank}` }),
        }, `${p.rank}. ${p.title}`),
        el("span", { class: "score" }, `score ${fmt.score(p.score)}`,
          el("span", { class: "score-bar", "data-w": width, "aria-hidden": "true" }),
          sub.length ? ` (${sub.join(", ")})` : ""),
      ),
      el("p", { class: "meta", text: [p.source, p.date && fmt.date(p.date), p.doc_id].filter(Boolean).join(" · ") }),
      el("p", { class: "passage-text", text: p.text }));
  });
  $("passages").replaceChildren(...items);
  // Bar widths are set through the CSSOM (allowed by the CSP, unlike inline style attributes).
  for (const bar of $("passages").querySelectorAll(".score-bar")) bar.style.width = `${bar.dataset.w}px`;
  if (!passages.length) $("passages").append(el("li", { class: "meta", text: "No passages matched the filters." }));
}

