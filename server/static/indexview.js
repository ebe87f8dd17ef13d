/* The index view: what is served (documents, chunks, version), the last rebuild and its result,
   and a rebuild button for clients allowed to rebuild, polling /v1/index/status for progress
   while a rebuild runs. */

import { getJson } from "./api.js";
import { $, app, el, fmt, hideError, put, setStatus, showError } from "./dom.js";

let pollTimer = null;

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

export function renderRebuildAccess() {
  const access = (app.config && app.config.rebuild) || "forbidden";
  $("rebuild-form").hidden = access === "forbidden";
  $("rebuild-denied").hidden = access !== "forbidden";
  $("token-field").hidden = access !== "token";
}

export async function loadIndex({ announce = false } = {}) {
  clearTimeout(pollTimer);
  try {
    const s = await getJson("/v1/index/status");
    hideError($("index-error"));
    renderIndexStatus(s);
    if (app.view !== "index") return;
    if (s.running || s.queued) {
      pollTimer = setTimeout(() => loadIndex({ announce: true }), 700);
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
  if (app.config && app.config.rebuild === "token") headers.Authorization = `Bearer ${token}`;
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

export function stopPolling() {
  clearTimeout(pollTimer);
}

export function initIndex() {
  $("rebuild-form").addEventListener("submit", rebuild);
}
