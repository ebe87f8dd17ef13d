/* Ask the articles — the web page's one script (no framework, no build step, no network
   beyond this server).

   Invariants:
   - Text that comes from the server (articles, answers, titles, errors) is only ever inserted
     as text: `el()` sets textContent and appends text nodes; nothing here assigns innerHTML.
     The page's Content-Security-Policy (server/web.py) backs this up.
   - A highlighted span is document.text.slice(start, end), inserted as one <mark> between two
     text nodes, so it equals the citation's quote exactly; if the article changed since the
     answer was written the page says so instead of highlighting the wrong words silently.
   - The URL holds the view and the question with its options (?q=…), so a reload or a shared
     link asks again and shows the same answer.
*/
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 20;
const NARROW = window.matchMedia("(max-width: 860px)");

/** An element with optional class/attributes and children (strings become text nodes). */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return add(node, children);
}

/** Replace `node`'s children with `children`. */
function put(node, ...children) {
  node.replaceChildren();
  return add(node, children);
}

/** Append children: nulls skipped, arrays flattened, strings as text nodes (never HTML). */
function add(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const fmt = {
  int: (n) => Number(n).toLocaleString("en"),
  score: (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3)),
  ms: (x) => (x >= 100 ? `${Math.round(x)} ms` : `${Number(x).toFixed(1)} ms`),
  time: (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "–"),
};

// ------------------------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.fields = extra.fields || [];
    this.requestId = extra.requestId || null;
  }
}

const LOST = "Lost connection to the server. Check that it is still running, then try again.";

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    /* not JSON: a proxy or a dying server */
  }
  const e = body && body.error ? body.error : {};
  const requestId = e.request_id || response.headers.get("x-request-id");
  return new ApiError(response.status, e.type || "http_error",
    e.message || response.statusText || `HTTP ${response.status}`,
    { fields: e.fields, requestId });
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", LOST);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function getJson(path, options) {
  const response = await request(path, options);
  try {
    return await response.json();
  } catch (_) {
    throw new ApiError(0, "network", LOST);
  }
}

const docPath = (id) => "/v1/documents/" + id.split("/").map(encodeURIComponent).join("/");
const docCache = new Map();

/** A document with its text, fetched once per page view (a failed fetch is not cached). */
function getDocument(id) {
  if (!docCache.has(id)) {
    const promise = getJson(docPath(id));
    promise.catch(() => docCache.delete(id));
    docCache.set(id, promise);
  }
  return docCache.get(id);
}

/** Server-Sent Events from a fetch body: calls onEvent(name, data) per event. */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", "The connection was lost before the answer was finished.");
    }
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue;
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ------------------------------------------------------------------------------------ errors

/** Fill an error box: what went wrong, in words, with a retry button when one helps. */
function showError(box, err, retry) {
  let title;
  if (err.status === 0) title = err.message;
  else if (err.status === 503) title = "The service is not ready.";
  else if (err.status >= 500) title = `The server failed (HTTP ${err.status}).`;
  else if (err.status === 404) title = "Not found.";
  else title = "The request was not accepted.";
  const detail = err.status === 0 ? null : err.message;
  put(box,
    el("strong", { text: title }),
    detail ? el("p", { class: "detail", text: detail }) : null,
    err.requestId && err.status >= 500
      ? el("p", { class: "detail", text: `Request id: ${err.requestId}` }) : null,
    retry ? el("button", { type: "button", class: "secondary", onclick: retry }, "Try again") : null,
  );
  box.dataset.status = String(err.status);
  box.hidden = false;
}

function hideError(box) {
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.status;
}

function setStatus(node, text, busy = false) {
  node.textContent = text;
  node.classList.toggle("busy", busy);
}

// ------------------------------------------------------------------------------------ article viewer

/** A panel showing one article, optionally with the span [start, end) in a <mark>. */
function makeViewer(root, placeholderText, onClose) {
  let generation = 0;

  function clear() {
    generation += 1;
    root.classList.add("empty");
    root.replaceChildren(el("p", { class: "placeholder", text: placeholderText }));
  }

  function render(doc, span) {
    const text = doc.text;
    const hasSpan = span && Number.isInteger(span.start) && Number.isInteger(span.end);
    const close = el("button", { type: "button", class: "secondary close",
      "aria-label": "Close the article", onclick: () => { clear(); if (onClose) onClose(); } }, "×");
    const about = [
      ["Source", doc.source || "not stated"],
      ["Date", doc.date || "not stated"],
      doc.dateline ? ["Dateline", doc.dateline] : null,
      ["Document", el("code", { text: doc.id })],
      ["Length", `${fmt.int(text.length)} characters`],
    ];
    if (hasSpan) about.push([span.label || "Highlighted", `characters ${fmt.int(span.start)}–${fmt.int(span.end)}`]);
    const head = el("div", { class: "article-head" },
      el("h2", { id: `${root.id}-title`, text: doc.title }),
      close,
      el("dl", { class: "article-meta" },
      about.filter(Boolean).map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])));
    const body = el("div", { class: "article-body", tabindex: "0", role: "region",
      "aria-label": `Text of ${doc.title}` });
    let warning = null;
    if (hasSpan) {
      const cited = text.slice(span.start, span.end);
      if (span.expected !== undefined && span.expected !== null && cited !== span.expected) {
        warning = el("p", { class: "article-warning", role: "note",
          text: "This article has changed since the answer was written: the quoted words are no longer at these characters. Ask again for a fresh answer." });
      }
      body.append(text.slice(0, span.start), el("mark", { text: cited }), text.slice(span.end));
    } else {
      body.append(text);
    }
    root.classList.remove("empty");
    root.setAttribute("aria-labelledby", `${root.id}-title`);
    put(root, head, warning, body);
    return body;
  }

  function reveal(body, scrollPage) {
    const mark = body.querySelector("mark");
    if (!mark) {
      body.scrollTop = 0;
      if (scrollPage) root.scrollIntoView({ block: "start" });
      return;
    }
    if (body.scrollHeight > body.clientHeight + 1) {
      const offset = mark.getBoundingClientRect().top - body.getBoundingClientRect().top;
      body.scrollTop += offset - body.clientHeight / 3;
    }
    if (scrollPage) {
      const r = mark.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) mark.scrollIntoView({ block: "center" });
    }
  }

  /** Show `docId`; `span` = {start, end, expected?, label?}; resolves once drawn. */
  async function show(docId, span, { scrollPage = false } = {}) {
    const mine = ++generation;
    root.classList.remove("empty");
    root.setAttribute("aria-busy", "true");
    root.replaceChildren(el("p", { class: "placeholder", text: "Loading the article…" }));
    try {
      const doc = await getDocument(docId);
      if (mine !== generation) return;
      reveal(render(doc, span), scrollPage);
    } catch (err) {
      if (mine !== generation) return;
      const box = el("div", { class: "error-box", role: "alert" });
      showError(box, err, () => show(docId, span, { scrollPage }));
      root.replaceChildren(box);
    } finally {
      if (mine === generation) root.removeAttribute("aria-busy");
    }
  }

  clear();
  return { show, clear };
}

// ------------------------------------------------------------------------------------ state & URL

const state = {
  config: null,
  view: "ask",
  asking: null, // AbortController of the question in flight
  answer: null,
  passages: [],
  activeCite: null,
  indexTimer: null,
};

const OPTION_FIELDS = [
  // [URL key, input id, request path]
  ["mode", "opt-mode", "mode"],
  ["k", "opt-k", "top_k"],
  ["answerer", "opt-answerer", "answerer"],
  ["doc", "opt-doc", "filters.doc_ids"],
  ["source", "opt-source", "filters.sources"],
  ["from", "opt-from", "filters.date_from"],
  ["to", "opt-to", "filters.date_to"],
];

function defaults() {
  const c = state.config || {};
  return { mode: c.default_mode || "hybrid", k: String(c.default_top_k || 5),
    answerer: c.default_answerer || "extractive" };
}

function setUrl(params, push) {
  const query = params.toString();
  const url = query ? `/?${query}` : "/";
  if (url === location.pathname + location.search) return;
  history[push ? "pushState" : "replaceState"](null, "", url);
}

/** The ask form as URL parameters (defaults left out, so shared links stay short). */
function askParams() {
  const params = new URLSearchParams();
  params.set("q", $("question").value.trim());
  const dflt = defaults();
  for (const [key, id] of OPTION_FIELDS) {
    const value = $(id).value.trim();
    if (value && value !== dflt[key]) params.set(key, value);
  }
  return params;
}

function fillAskForm(params) {
  $("question").value = params.get("q") || "";
  fillOptions(params);
}

function fillOptions(params) {
  const dflt = defaults();
  let custom = false;
  for (const [key, id] of OPTION_FIELDS) {
    const value = params.get(key);
    if (value !== null && value !== dflt[key]) custom = true;
    const input = $(id);
    const wanted = value !== null ? value : (dflt[key] || "");
    if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === wanted)) continue;
    input.value = wanted;
  }
  if (custom) $("options").open = true;
}

function askBody() {
  const body = { question: $("question").value.trim(), stream: true };
  const mode = $("opt-mode").value;
  const k = $("opt-k").value.trim();
  const answerer = $("opt-answerer").value;
  if (mode) body.mode = mode;
  if (k) body.top_k = Number(k);
  if (answerer) body.answerer = answerer;
  const filters = {};
  const doc = $("opt-doc").value.trim();
  const source = $("opt-source").value.trim();
  if (doc) filters.doc_ids = [doc];
  if (source) filters.sources = [source];
  if ($("opt-from").value) filters.date_from = $("opt-from").value;
  if ($("opt-to").value) filters.date_to = $("opt-to").value;
  if (Object.keys(filters).length) body.filters = filters;
  return body;
}

// ------------------------------------------------------------------------------------ asking

let askViewer;

function markInvalid(fields) {
  for (const [, id] of OPTION_FIELDS) $(id).removeAttribute("aria-invalid");
  $("question").removeAttribute("aria-invalid");
  for (const f of fields || []) {
    const path = f.field || "";
    const hit = OPTION_FIELDS.find(([, , p]) => path === p || path.startsWith(p + "."));
    const id = path === "question" ? "question" : hit && hit[1];
    if (!id) continue;
    $(id).setAttribute("aria-invalid", "true");
    if (id !== "question") $("options").open = true;
  }
}

function startLoading() {
  hideError($("ask-error"));
  markInvalid([]);
  state.answer = null;
  state.passages = [];
  state.activeCite = null;
  $("results").hidden = true;
  $("results").setAttribute("aria-busy", "true");
  $("answer-card").classList.remove("abstained");
  $("short-answer").hidden = true;
  $("answer-text").replaceChildren();
  $("answer-meta").textContent = "";
  $("citations").replaceChildren();
  $("citations-block").hidden = true;
  $("passages").replaceChildren();
  askViewer.clear();
  setStatus($("ask-status"), "Searching the articles…", true);
}

function failAsk(err) {
  $("results").removeAttribute("aria-busy");
  $("answer-text").classList.remove("streaming");
  setStatus($("ask-status"), "");
  markInvalid(err.fields);
  showError($("ask-error"), err, err.status === 422 ? null : () => ask({ push: false }));
  if (!state.passages.length) $("results").hidden = true;
}

/** Ask the question in the form: stream passages, then the answer text, then the result. */
async function ask({ push = true } = {}) {
  const question = $("question").value.trim();
  if (!question) {
    showError($("ask-error"), new ApiError(422, "validation_error", "Type a question first."));
    markInvalid([{ field: "question" }]);
    $("question").focus();
    return;
  }
  const params = askParams();
  const cite = new URLSearchParams(location.search).get("cite");
  if (!push && cite) params.set("cite", cite);
  setUrl(params, push);
  $("nav-ask").href = `/?${params}`;
  document.title = `${question} — Ask the articles`;
  if (state.asking) state.asking.abort();
  const controller = new AbortController();
  state.asking = controller;
  startLoading();
  try {
    const response = await request("/v1/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(askBody()),
      signal: controller.signal,
    });
    let done = false;
    await readEvents(response, (name, data) => {
      if (controller !== state.asking) return;
      if (name === "passages") onPassages(data.passages || []);
      else if (name === "delta") onDelta(data.text || "");
      else if (name === "done") { done = true; onDone(data, cite); }
      else if (name === "error") {
        done = true;
        const e = data.error || {};
        failAsk(new ApiError(500, e.type || "internal_error", e.message || "internal error",
          { requestId: e.request_id }));
      }
    });
    if (!done && controller === state.asking) {
      throw new ApiError(0, "network", "The connection was lost before the answer was finished.");
    }
  } catch (err) {
    if (err.name === "AbortError" || controller !== state.asking) return;
    failAsk(err instanceof ApiError ? err : new ApiError(0, "network", LOST));
  } finally {
    if (controller === state.asking) state.asking = null;
  }
}

function onPassages(passages) {
  state.passages = passages;
  $("results").hidden = false;
  renderPassages(passages, false);
  setStatus($("ask-status"), "Writing the answer…", true);
  $("answer-text").classList.add("streaming");
}

function onDelta(text) {
  $("answer-text").append(text);
}

function onDone(answer, cite) {
  state.answer = answer;
  state.passages = answer.passages || state.passages;
  $("results").hidden = false;
  $("results").removeAttribute("aria-busy");
  $("answer-text").classList.remove("streaming");
  renderAnswer(answer);
  renderPassages(state.passages, answer.abstained);
  const n = answer.citations.length;
  setStatus($("ask-status"), answer.abstained
    ? "The articles don't say. The closest passages are listed."
    : `Answered with ${n} citation${n === 1 ? "" : "s"}.`);
  if (cite && answer.citations.some((c) => String(c.n) === cite)) openCitation(Number(cite), true);
}

/** The short answer in either shape: a string with short_answer_doc_id/_start/_end beside it,
    or an object {text, doc_id, start, end}. Null when the answer has none. */
function shortAnswerOf(answer) {
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

function citeLink(c) {
  return el("a", { class: "cite", href: citeHref(c), "data-n": c.n,
    "aria-label": `[${c.n}] ${c.title}`,
    onclick: (e) => { e.preventDefault(); openCitation(c.n, true); },
    onfocus: () => openCitation(c.n, false) }, `[${c.n}]`);
}

/** Answer text with [n] markers as links and the short answer (if any) emphasised. */
function answerNodes(text, citations, short) {
  const byN = new Map(citations.map((c) => [String(c.n), c]));
  const nodes = [];
  let shortLeft = short ? short.text : null;
  for (const part of text.split(/(\[\d+\])/)) {
    const m = /^\[(\d+)\]$/.exec(part);
    if (m && byN.has(m[1])) { nodes.push(citeLink(byN.get(m[1]))); continue; }
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

function renderShortAnswer(short, answer) {
  const box = $("short-answer");
  if (!short || answer.abstained) { box.hidden = true; return; }
  const canOpen = short.doc_id && Number.isInteger(short.start) && Number.isInteger(short.end);
  put(box,
    el("span", { class: "label", text: "Short answer" }),
    el("span", { class: "text", text: short.text }),
    canOpen ? el("button", { type: "button", class: "link",
      onclick: () => askViewer.show(short.doc_id,
        { start: short.start, end: short.end, expected: short.text, label: "Short answer" },
        { scrollPage: true }) }, "show in article") : null,
  );
  box.hidden = false;
}

function renderAnswer(answer) {
  const card = $("answer-card");
  card.classList.toggle("abstained", !!answer.abstained);
  $("answer-title").textContent = answer.abstained ? "No answer in the articles" : "Answer";
  const short = shortAnswerOf(answer);
  renderShortAnswer(short, answer);
  const text = $("answer-text");
  if (answer.abstained) {
    put(text, el("span", { class: "abstain-title", text: "The articles don't say." }),
      "\n", answer.answer);
  } else {
    put(text, answerNodes(answer.answer, answer.citations, short));
  }
  const meta = [`${answer.mode}`, answer.answerer || "extractive"];
  if (typeof answer.confidence === "number") meta.push(`confidence ${answer.confidence.toFixed(2)}`);
  if (answer.timings && answer.timings.total) meta.push(fmt.ms(answer.timings.total));
  if (answer.fallback) meta.push(`LLM unavailable, extractive answer shown (${answer.fallback_reason || "no reason given"})`);
  $("answer-meta").textContent = meta.join(" · ");
  renderCitations(answer.citations, answer.answer);
}

/** One line per citation; the quote too when the answer does not already say it word for word
    (an LLM's paraphrase), so extractive answers are not printed twice. */
function renderCitations(citations, answerText) {
  const list = $("citations");
  const flat = (t) => t.replace(/\s+/g, " ");
  const said = flat(answerText);
  list.replaceChildren(...citations.map((c) => el("li", { id: `cite-${c.n}`, "data-n": c.n },
    el("div", { class: "passage-head" }, citeLink(c), el("span", { text: c.title })),
    el("p", { class: "meta", text: [c.source || "source not stated", c.doc_id,
      `characters ${fmt.int(c.start)}–${fmt.int(c.end)}`, `score ${fmt.score(c.score)}`].join(" · ") }),
    said.includes(flat(c.quote)) ? null : el("blockquote", { text: c.quote }))));
  $("citations-block").hidden = citations.length === 0;
}

function renderPassages(passages, abstained) {
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
          onclick: () => askViewer.show(p.doc_id,
            { start: p.start, end: p.end, expected: p.text, label: `Passage ${p.rank}` }, { scrollPage: true }),
        }, `${p.rank}. ${p.title}`),
        el("span", { class: "score" }, `score ${fmt.score(p.score)}`,
          el("span", { class: "score-bar", "data-w": width, "aria-hidden": "true" }),
          sub.length ? ` (${sub.join(", ")})` : ""),
      ),
      el("p", { class: "meta", text: [p.source, p.date, p.doc_id].filter(Boolean).join(" · ") }),
      el("p", { class: "passage-text", text: p.text }));
  });
  $("passages").replaceChildren(...items);
  // Bar widths are set through the CSSOM (allowed by the CSP, unlike inline style attributes).
  for (const bar of $("passages").querySelectorAll(".score-bar")) bar.style.width = `${bar.dataset.w}px`;
  if (!passages.length) $("passages").append(el("li", { class: "meta", text: "No passages matched the filters." }));
}

function openCitation(n, fromClick) {
  const answer = state.answer;
  const c = answer && answer.citations.find((x) => x.n === n);
  if (!c) return;
  for (const node of document.querySelectorAll(".cite.active, .citations li.active")) node.classList.remove("active");
  for (const node of document.querySelectorAll(`.cite[data-n="${n}"], #cite-${n}`)) node.classList.add("active");
  if (state.activeCite !== n || fromClick) {
    state.activeCite = n;
    askViewer.show(c.doc_id, { start: c.start, end: c.end, expected: c.quote, label: `Citation [${n}]` },
      { scrollPage: fromClick && NARROW.matches });
  }
  const params = new URLSearchParams(location.search);
  params.set("cite", String(n));
  setUrl(params, false);
}

// ------------------------------------------------------------------------------------ documents view

let docViewer;

function docParams() {
  const params = new URLSearchParams(location.search);
  return { q: params.get("dq") || "", page: Math.max(1, Number(params.get("page")) || 1),
    open: params.get("open"), start: params.get("start"), end: params.get("end") };
}

function sizeText(chars) {
  return chars >= 10000 ? `${(chars / 1000).toFixed(0)}k chars` : `${fmt.int(chars)} chars`;
}

async function loadDocuments() {
  const { q, page, open, start, end } = docParams();
  $("doc-q").value = q;
  hideError($("doc-error"));
  setStatus($("doc-status"), "Loading the documents…", true);
  const query = new URLSearchParams({ offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE });
  if (q) query.set("q", q);
  try {
    const data = await getJson(`/v1/documents?${query}`);
    renderDocuments(data, q, page);
  } catch (err) {
    setStatus($("doc-status"), "");
    showError($("doc-error"), err, loadDocuments);
  }
  if (open) {
    const span = start !== null && end !== null
      ? { start: Number(start), end: Number(end), label: "Cited" } : null;
    docViewer.show(open, span, { scrollPage: !!span && NARROW.matches });
    markActiveRow(open);
  }
}

function renderDocuments(data, q, page) {
  const rows = data.items.map((d) => el("tr", { "data-id": d.id },
    el("td", {},
      el("button", { type: "button", class: "link", onclick: () => openDocument(d.id) }, d.title),
      el("span", { class: "doc-id", text: d.id })),
    el("td", { "data-label": "Source", text: d.source || "–" }),
    el("td", { class: "date", "data-label": "Date", text: d.date || "–" }),
    el("td", { class: "num", "data-label": "Size", text: sizeText(d.length) })));
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: "4", text: q ? `No documents match “${q}”.` : "The index has no documents." })));
  }
  $("doc-rows").replaceChildren(...rows);
  const first = data.total ? data.offset + 1 : 0;
  const last = data.offset + data.items.length;
  $("doc-page-info").textContent = `${fmt.int(first)}–${fmt.int(last)} of ${fmt.int(data.total)}`;
  $("doc-prev").disabled = page <= 1;
  $("doc-next").disabled = last >= data.total;
  setStatus($("doc-status"), q
    ? `${fmt.int(data.total)} document${data.total === 1 ? " matches" : "s match"} “${q}”.`
    : `${fmt.int(data.total)} document${data.total === 1 ? "" : "s"} in the index.`);
}

function markActiveRow(id) {
  for (const row of $("doc-rows").querySelectorAll("tr")) row.classList.toggle("active", row.dataset.id === id);
}

function openDocument(id) {
  const params = new URLSearchParams(location.search);
  params.set("view", "documents");
  params.set("open", id);
  params.delete("start");
  params.delete("end");
  setUrl(params, false);
  markActiveRow(id);
  docViewer.show(id, null, { scrollPage: NARROW.matches });
}

function goDocPage(delta) {
  const params = new URLSearchParams(location.search);
  params.set("page", String(docParams().page + delta));
  setUrl(params, true);
  loadDocuments();
}

// ------------------------------------------------------------------------------------ index view

function facts(dl, pairs) {
  put(dl, pairs.filter(Boolean).map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function renderIndexStatus(s) {
  facts($("index-facts"), [
    ["Documents", fmt.int(s.documents)],
    ["Chunks", fmt.int(s.chunks)],
    ["Serving version", el("code", { text: s.serving_version || "none" })],
    ["Watching the folder", s.watching ? "yes (rebuilds on change)" : "no"],
    ["Rebuilds by this server", fmt.int(s.completed)],
    s.reload_error ? ["Newest version not loaded", el("span", { class: "failed", text: s.reload_error })] : null,
  ]);
  const run = s.last;
  if (!run) {
    facts($("rebuild-facts"), [["Result", "no rebuild since the server started"]]);
  } else {
    const r = run.report;
    const result = run.ok === null || run.ok === undefined
      ? "running…"
      : el("span", { class: run.ok ? "ok" : "failed", text: run.ok ? "succeeded" : "failed" });
    facts($("rebuild-facts"), [
      ["Result", result],
      ["Started", `${fmt.time(run.started_at)} (${run.trigger === "watch" ? "folder change" : "requested"})`],
      run.finished_at ? ["Took", `${(run.finished_at - run.started_at).toFixed(1)} s`] : null,
      r ? ["What changed", `${r.reason}: ${r.added.length} added, ${r.changed.length} changed, ${r.removed.length} removed, ${fmt.int(r.unchanged)} unchanged`] : null,
      r ? ["Embedded", `${fmt.int(r.chunks_embedded)} of ${fmt.int(r.chunks)} chunks`] : null,
      r && r.version ? ["Version built", el("code", { text: r.version })] : null,
      r && r.warnings && r.warnings.length ? ["Warnings", r.warnings.join("\n")] : null,
      run.error ? ["Error", el("span", { class: "failed", text: run.error })] : null,
    ]);
  }
  const running = s.running;
  $("rebuild-progress").hidden = !running;
  $("rebuild-button").disabled = running;
  if (running) {
    const since = run ? Math.max(0, Date.now() / 1000 - run.started_at) : 0;
    $("rebuild-progress-label").textContent = `Rebuilding… ${since.toFixed(0)} s${s.queued ? ", another rebuild queued" : ""}`;
  }
}

function renderRebuildAccess() {
  const access = (state.config && state.config.rebuild) || "forbidden";
  $("rebuild-form").hidden = access === "forbidden";
  $("rebuild-denied").hidden = access !== "forbidden";
  $("token-field").hidden = access !== "token";
}

async function loadIndex({ announce = false } = {}) {
  clearTimeout(state.indexTimer);
  try {
    const s = await getJson("/v1/index/status");
    hideError($("index-error"));
    renderIndexStatus(s);
    if (state.view !== "index") return;
    if (s.running || s.queued) {
      state.indexTimer = setTimeout(() => loadIndex({ announce: true }), 700);
    } else if (announce && s.last) {
      setStatus($("rebuild-status"), s.last.ok ? "Rebuild finished: the index is up to date." : `Rebuild failed: ${s.last.error || "see the server log"}`);
    }
  } catch (err) {
    showError($("index-error"), err, () => loadIndex());
  }
}

async function rebuild(event) {
  event.preventDefault();
  const headers = {};
  const token = $("admin-token").value;
  if (state.config && state.config.rebuild === "token") headers.Authorization = `Bearer ${token}`;
  $("rebuild-button").disabled = true;
  setStatus($("rebuild-status"), "Starting a rebuild…", true);
  try {
    const r = await getJson("/v1/index/rebuild", { method: "POST", headers });
    setStatus($("rebuild-status"), r.status === "queued" ? "A rebuild is running; another will follow it." : "Rebuild started.");
    await loadIndex({ announce: true });
  } catch (err) {
    $("rebuild-button").disabled = false;
    setStatus($("rebuild-status"), "");
    showError($("index-error"), err, null);
  }
}

// ------------------------------------------------------------------------------------ views

function showView(view) {
  state.view = view;
  for (const name of ["ask", "documents", "index"]) {
    $(`view-${name}`).hidden = name !== view;
    const link = $(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view !== "index") clearTimeout(state.indexTimer);
}

function viewOf(params) {
  return ["documents", "index"].includes(params.get("view")) ? params.get("view") : "ask";
}

/** Draw the view the URL names; on the ask view, ask the URL's question if it is not shown. */
function route() {
  const params = new URLSearchParams(location.search);
  const view = viewOf(params);
  showView(view);
  if (view === "documents") {
    document.title = "Documents — Ask the articles";
    loadDocuments();
  } else if (view === "index") {
    document.title = "Index — Ask the articles";
    loadIndex();
  } else {
    fillAskForm(params);
    const q = params.get("q");
    const shown = state.answer && state.answer.question === q;
    if (q && !shown) ask({ push: false });
    if (!q) clearAnswer();
  }
}

function clearAnswer() {
  if (state.asking) state.asking.abort();
  state.asking = null;
  state.answer = null;
  $("results").hidden = true;
  hideError($("ask-error"));
  setStatus($("ask-status"), "");
  document.title = "Ask the articles";
}

function navigate(url) {
  history.pushState(null, "", url);
  route();
  $("main").focus({ preventScroll: true });
}

// ------------------------------------------------------------------------------------ start-up

async function loadConfig() {
  try {
    state.config = await getJson("/v1/config");
  } catch (_) {
    state.config = null; // older server: keep the defaults in the HTML
  }
  const c = state.config;
  if (!c) return;
  const answerer = $("opt-answerer");
  answerer.replaceChildren(...c.answerers.map((a) => el("option", { value: a },
    a === "llm" ? "LLM" : "Extractive")));
  answerer.value = c.default_answerer;
  answerer.disabled = c.answerers.length < 2;
  $("answerer-help").textContent = c.answerers.includes("llm")
    ? "The LLM answer falls back to the extractive one if it fails."
    : "LLM answers need RAG_LLM_BASE_URL on the server.";
  $("opt-k").max = String(c.max_top_k);
  $("question").maxLength = c.max_question_chars;
  renderRebuildAccess();
}

/** Say so while the model and index are still loading; resolves once /ready says 200. */
async function waitUntilReady() {
  for (let wait = 500; ; wait = Math.min(wait * 1.5, 3000)) {
    let body = null;
    try {
      const r = await fetch("/ready");
      if (r.ok) { $("notice").hidden = true; return; }
      body = await r.json();
    } catch (_) {
      body = { status: "unreachable" };
    }
    const notice = $("notice");
    notice.textContent = body.status === "failed"
      ? `The server could not load the index: ${body.error || "see its log"}`
      : body.status === "unreachable" ? LOST : "The model and index are loading; questions will be answered in a moment…";
    notice.hidden = false;
    if (body.status === "failed") return;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

let suggestTimer = null;
function suggestDocuments() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const q = $("opt-doc").value.trim();
    try {
      const data = await getJson(`/v1/documents?${new URLSearchParams({ q, limit: 20 })}`);
      $("doc-suggestions").replaceChildren(...data.items.map((d) => el("option", { value: d.id, label: d.title })));
    } catch (_) { /* suggestions are optional */ }
  }, 250);
}

function wire() {
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); ask(); });
  $("opt-reset").addEventListener("click", () => {
    const dflt = defaults();
    for (const [key, id] of OPTION_FIELDS) $(id).value = dflt[key] || "";
    markInvalid([]);
  });
  $("opt-doc").addEventListener("input", suggestDocuments);
  $("doc-search").addEventListener("submit", (e) => {
    e.preventDefault();
    const params = new URLSearchParams({ view: "documents" });
    const q = $("doc-q").value.trim();
    if (q) params.set("dq", q);
    setUrl(params, true);
    loadDocuments();
  });
  $("doc-prev").addEventListener("click", () => goDocPage(-1));
  $("doc-next").addEventListener("click", () => goDocPage(1));
  $("rebuild-form").addEventListener("submit", rebuild);
  for (const link of document.querySelectorAll("[data-view], #home-link")) {
    link.addEventListener("click", (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      navigate(link.getAttribute("href"));
    });
  }
  window.addEventListener("popstate", route);
}

async function start() {
  askViewer = makeViewer($("ask-article"), "Select a marker such as [1] to read the cited passage in its article.",
    () => { state.activeCite = null; });
  docViewer = makeViewer($("doc-article"), "Select a title to read the article.", () => markActiveRow(null));
  wire();
  // Draw the view at once (what a person types meanwhile is kept), then load what it needs.
  const params = new URLSearchParams(location.search);
  const view = viewOf(params);
  showView(view);
  if (view === "ask") {
    $("question").value = params.get("q") || "";
    if (params.get("q")) setStatus($("ask-status"), "Connecting to the server…", true);
    else $("question").focus();
  }
  await loadConfig();
  if (view === "ask") fillOptions(params);
  await waitUntilReady();
  if (!state.config) {
    await loadConfig();
    if (view === "ask") fillOptions(params);
  }
  if (view !== "ask" || params.get("q")) route();
  document.documentElement.dataset.ready = "true";
}

start();
