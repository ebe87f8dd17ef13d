/* The ask view: the question form and its options (mirrored in the URL), the streamed answer,
   and the article panel its citations open in. */

import { ApiError, LOST, getJson, readEvents, request } from "./api.js";
import { renderAnswer, renderPassages } from "./answer.js";
import { $, NARROW, app, el, hideError, put, setStatus, setUrl, showError } from "./dom.js";
import { clearTimeline, loadTimeline } from "./timeline.js";
import { makeViewer } from "./viewer.js";

const state = {
  asking: null, // AbortController of the question in flight
  body: null, // the /v1/ask body of the question on screen (its timeline asks the same)
  answer: null,
  passages: [],
  activeCite: null,
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
  ["as_of", "as-of", "as_of"], // beside the question, not among the options
];
const IN_OPTIONS = (id) => id !== "question" && id !== "as-of";

function defaults() {
  const c = app.config || {};
  return { mode: c.default_mode || "hybrid", k: String(c.default_top_k || 5),
    answerer: c.default_answerer || "extractive" };
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

export function fillAskForm(params) {
  $("question").value = params.get("q") || "";
  fillOptions(params);
}

export function fillOptions(params) {
  const dflt = defaults();
  let custom = false;
  for (const [key, id] of OPTION_FIELDS) {
    const value = params.get(key);
    if (value !== null && value !== dflt[key] && IN_OPTIONS(id)) custom = true;
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
  if ($("as-of").value) body.as_of = $("as-of").value; // empty: the server's day (today)
  return body;
}

let askViewer;
const on = {
  cite: (n, fromClick) => openCitation(n, fromClick),
  span: (docId, span) => askViewer.show(docId, span, { scrollPage: true }),
};

function markInvalid(fields) {
  for (const [, id] of OPTION_FIELDS) $(id).removeAttribute("aria-invalid");
  $("question").removeAttribute("aria-invalid");
  for (const f of fields || []) {
    const path = f.field || "";
    const hit = OPTION_FIELDS.find(([, , p]) => path === p || path.startsWith(p + "."));
    const id = path === "question" ? "question" : hit && hit[1];
    if (!id) continue;
    $(id).setAttribute("aria-invalid", "true");
    if (IN_OPTIONS(id)) $("options").open = true;
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
  clearTimeline();
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
export async function ask({ push = true } = {}) {
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
      body: JSON.stringify((state.body = askBody())),
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
  renderPassages(passages, false, on);
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
  renderAnswer(answer, on);
  renderPassages(state.passages, answer.abstained, on);
  const n = answer.citations.length;
  setStatus($("ask-status"), answer.abstained
    ? "The articles don't say. The closest passages are listed."
    : `Answered with ${n} citation${n === 1 ? "" : "s"}.`);
  if (cite && answer.citations.some((c) => String(c.n) === cite)) openCitation(Number(cite), true);
  loadTimeline(state.body, on);
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

export function clearAnswer() {
  if (state.asking) state.asking.abort();
  state.asking = null;
  state.answer = null;
  $("results").hidden = true;
  clearTimeline();
  hideError($("ask-error"));
  setStatus($("ask-status"), "");
  document.title = "Ask the articles";
}

let suggestTimer = null;
function suggestDocuments() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const q = $("opt-doc").value.trim();
    try {
      const data = await getJson(`/v1/documents?${new URLSearchParams({ q, limit: 20 })}`);
      put($("doc-suggestions"), data.items.map((d) => el("option", { value: d.id, label: d.title })));
    } catch (_) { /* suggestions are optional */ }
  }, 250);
}

/** Offer what this server has (from /v1/config): answerers, limits. */
export function applyConfig(c) {
  const answerer = $("opt-answerer");
  put(answerer, c.answerers.map((a) => el("option", { value: a }, a === "llm" ? "LLM" : "Extractive")));
  answerer.value = c.default_answerer;
  answerer.disabled = c.answerers.length < 2;
  $("answerer-help").textContent = c.answerers.includes("llm")
    ? "The LLM answer falls back to the extractive one if it fails."
    : "LLM answers need RAG_LLM_BASE_URL on the server.";
  $("opt-k").max = String(c.max_top_k);
  $("question").maxLength = c.max_question_chars;
}

/** Whether the answer to `q` is the one on screen (then a route back to it need not ask). */
export function shows(q) {
  return !!state.answer && state.answer.question === q;
}

export function initAsk() {
  askViewer = makeViewer($("ask-article"),
    "Select a marker such as [1] to read the cited passage in its article.",
    () => {
      state.activeCite = null;
      for (const node of document.querySelectorAll(".cite.active, .citations li.active")) node.classList.remove("active");
      $("answer-title").focus();
    });
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); ask(); });
  $("opt-reset").addEventListener("click", () => {
    const dflt = defaults();
    for (const [key, id] of OPTION_FIELDS) if (IN_OPTIONS(id)) $(id).value = dflt[key] || "";
    markInvalid([]);
  });
  $("opt-doc").addEventListener("input", suggestDocuments);
}
