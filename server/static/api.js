/* Talking to the server: JSON requests with errors as ApiError, documents fetched once, and
   Server-Sent Events read from a fetch body (EventSource cannot POST). */

export class ApiError extends Error {
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.fields = extra.fields || [];
    this.requestId = extra.requestId || null;
  }
}

export const LOST = "Lost connection to the server. Check that it is still running, then try again.";

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

export async function request(path, options = {}) {
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

export async function getJson(path, options) {
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
export function getDocument(id) {
  if (!docCache.has(id)) {
    const promise = getJson(docPath(id));
    promise.catch(() => docCache.delete(id));
    docCache.set(id, promise);
  }
  return docCache.get(id);
}

/** Server-Sent Events from a fetch body: calls onEvent(name, data) per event. */
export async function readEvents(response, onEvent) {
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
