/* DOM helpers shared by the page's modules.

   Invariant: `el`, `put` and `add` insert strings as text nodes only; no module of this page
   assigns innerHTML, so text from articles can never become markup. */

/** What every module may read: the server's /v1/config (null until loaded) and the view shown. */
export const app = { config: null, view: "ask" };

export const $ = (id) => document.getElementById(id);
export const NARROW = window.matchMedia("(max-width: 860px)");

/** An element with optional class/attributes and children (strings become text nodes). */
export function el(tag, props, ...children) {
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
export function put(node, ...children) {
  node.replaceChildren();
  return add(node, children);
}

/** Append children: nulls skipped, arrays flattened, strings as text nodes (never HTML). */
export function add(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DATE_SOURCES = { "front-matter": "front matter", "html-meta": "page metadata",
  dateline: "dateline", text: "article text" };

/** An article date (ISO 8601; "--MM-DD" has no year) for people, with where it was found. */
function formatDate(iso, source, missing = "–") {
  if (!iso) return missing;
  const partial = /^--(\d\d)-(\d\d)$/.exec(iso);
  const text = partial
    ? `${Number(partial[2])} ${MONTHS[Number(partial[1]) - 1]}, year not stated` : iso;
  return source && DATE_SOURCES[source] ? `${text} (from the ${DATE_SOURCES[source]})` : text;
}

export const fmt = {
  date: formatDate,
  int: (n) => Number(n).toLocaleString("en"),
  score: (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3)),
  ms: (x) => (x >= 100 ? `${Math.round(x)} ms` : `${Number(x).toFixed(1)} ms`),
  time: (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "–"),
};

// ------------------------------------------------------------------------------------ errors

/** Fill an error box: what went wrong, in words, with a retry button when one helps. */
export function showError(box, err, retry) {
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

export function hideError(box) {
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.status;
}

export function setStatus(node, text, busy = false) {
  node.textContent = text;
  node.classList.toggle("busy", busy);
}

/** Put `params` in the address bar (push: a new history entry). */
export function setUrl(params, push) {
  const query = params.toString();
  const url = query ? `/?${query}` : "/";
  if (url === location.pathname + location.search) return;
  history[push ? "pushState" : "replaceState"](null, "", url);
}
