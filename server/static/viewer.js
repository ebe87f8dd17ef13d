/* The article panel: one document's title, source, date and id, and its text with an optional
   span in a <mark>. The span is document.text.slice(start, end) between two text nodes, so the
   marked words are exactly the quote; if they differ from the quote the caller expected (the
   article changed after the answer was written) the panel says so. */

import { getDocument } from "./api.js";
import { el, fmt, put, showError } from "./dom.js";

const docHref = (id) => `/?${new URLSearchParams({ view: "documents", open: id })}`;

/** A link to another publication of the story (`c` a DocumentDetail copy); `open(id)` opens it. */
function copyLink(c, open) {
  const who = c.source || "source not stated";
  return el("a", { href: docHref(c.doc_id), "aria-label": `Open ${c.title} (${who})`,
    onclick: (e) => { e.preventDefault(); open(c.doc_id); } }, c.date ? `${who}, ${fmt.date(c.date)}` : who);
}

/** The "Republished copy of" / "Also published by" rows of an article with copies. */
function copyRows(doc, open) {
  const copies = doc.copies || [];
  if (!copies.length) return [];
  const original = doc.canonical && doc.canonical !== doc.id
    ? copies.find((c) => c.doc_id === doc.canonical) : null;
  const others = copies.filter((c) => c !== original);
  const list = (cs) => el("ul", { class: "copies" }, cs.map((c) => el("li", {}, copyLink(c, open))));
  return [
    original ? ["Republished copy of", copyLink(original, open)] : null,
    others.length ? ["Also published by", list(others)] : null,
  ];
}

/** A panel showing one article, optionally with the span [start, end) in a <mark>. Links to
    the article's copies open them here, or through `onOpen(id)` when given. */
export function makeViewer(root, placeholderText, onClose, onOpen = null) {
  let generation = 0;
  const openCopy = (id) => (onOpen ? onOpen(id) : show(id, null));

  function clear() {
    generation += 1;
    root.classList.add("empty");
    root.replaceChildren(el("p", { class: "placeholder", text: placeholderText }));
  }

  function render(doc, span) {
    const text = doc.text;
    const hasSpan = span && Number.isInteger(span.start) && Number.isInteger(span.end);
    const closeButton = el("button", { type: "button", class: "secondary close",
      "aria-label": "Close the article", onclick: close }, "×");
    const about = [
      ["Source", doc.source || "not stated"],
      ["Date", fmt.date(doc.date, doc.date_source, "not stated")],
      doc.dateline ? ["Dateline", doc.dateline] : null,
      ...copyRows(doc, openCopy),
      ["Document", el("code", { text: doc.id })],
      ["Length", `${fmt.int(text.length)} characters`],
    ];
    if (hasSpan) about.push([span.label || "Highlighted", `characters ${fmt.int(span.start)}–${fmt.int(span.end)}`]);
    const head = el("div", { class: "article-head" },
      el("h2", { id: `${root.id}-title`, text: doc.title }),
      closeButton,
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

  /** Close (the × button, or Escape inside the panel); the caller decides where focus goes. */
  function close() {
    clear();
    if (onClose) onClose();
  }

  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !root.classList.contains("empty")) close();
  });
  clear();
  return { show, clear };
}
