/* Ask the articles — the web page's entry module: views, routing and start-up. The page is
   plain ES modules (dom, api, viewer, answer, ask, documents, indexview): no framework, no
   build step, no network beyond this server.

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

import { LOST, getJson } from "./api.js";
import { applyConfig, ask, clearAnswer, fillAskForm, fillOptions, initAsk, shows } from "./ask.js";
import { initDocuments, loadDocuments } from "./documents.js";
import { $, app, setStatus } from "./dom.js";
import { initIndex, loadIndex, renderRebuildAccess, stopPolling } from "./indexview.js";

function showView(view) {
  app.view = view;
  for (const name of ["ask", "documents", "index"]) {
    $(`view-${name}`).hidden = name !== view;
    const link = $(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view !== "index") stopPolling();
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
    if (q && !shows(q)) ask({ push: false });
    if (!q) clearAnswer();
  }
}

function navigate(url) {
  history.pushState(null, "", url);
  route();
  $("main").focus({ preventScroll: true });
}

async function loadConfig() {
  try {
    app.config = await getJson("/v1/config");
  } catch (_) {
    app.config = null; // an older server: keep the defaults written in the HTML
  }
  if (!app.config) return;
  applyConfig(app.config);
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

function wire() {
  initAsk();
  initDocuments();
  initIndex();
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
  if (!app.config) {
    await loadConfig();
    if (view === "ask") fillOptions(params);
  }
  if (view !== "ask" || params.get("q")) route();
  document.documentElement.dataset.ready = "true";
}

start();

