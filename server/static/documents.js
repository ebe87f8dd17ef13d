/* The documents view: the indexed articles (title, source, date, size), searched on the server
   (GET /v1/documents?q=), paged, and opened in an article panel. The URL holds search, page
   and the open article (with a span when a citation link led here). */

import { getJson } from "./api.js";
import { $, NARROW, el, fmt, hideError, put, setStatus, setUrl, showError } from "./dom.js";
import { makeViewer } from "./viewer.js";

const PAGE_SIZE = 20;
let docViewer;

function docParams() {
  const params = new URLSearchParams(location.search);
  return { q: params.get("dq") || "", page: Math.max(1, Number(params.get("page")) || 1),
    open: params.get("open"), start: params.get("start"), end: params.get("end") };
}

function sizeText(chars) {
  return chars >= 10000 ? `${(chars / 1000).toFixed(0)}k chars` : `${fmt.int(chars)} chars`;
}

export async function loadDocuments() {
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
    el("td", { class: "date", "data-label": "Date", text: fmt.date(d.date) }),
    el("td", { class: "num", "data-label": "Size", text: sizeText(d.length) })));
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: "4", text: q ? `No documents match “${q}”.` : "The index has no documents." })));
  }
  put($("doc-rows"), rows);
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

export function initDocuments() {
  docViewer = makeViewer($("doc-article"), "Select a title to read the article.", () => {
    const row = $("doc-rows").querySelector("tr.active button");
    markActiveRow(null);
    if (row) row.focus();
    else $("documents-title").focus();
  }, openDocument);
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
}
