// Monaco's public HTTP API, by URLs relative to the page (<meta name="monaco-root">), so the playground
// works wherever the API is mounted: at /, or under the path an Ingress gives it.
const root = new URL(document.querySelector('meta[name="monaco-root"]').content, document.baseURI);

/** An error the server answered with ({"error": ...}), or that it could not be reached. */
export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body) {
  const init = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, root), init);
  } catch {
    throw new ApiError("Monaco cannot be reached: is the server running?");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (typeof data?.error === "string") throw new ApiError(data.error, response.status); // Monaco's own words
    let message = WHY[response.status] ?? `The server answered HTTP ${response.status} ${response.statusText}.`;
    const retry = response.headers.get("retry-after");
    if (response.status === 429 && retry) message += ` Try again in ${retry} s.`;
    throw new ApiError(message.replace(" .", "."), response.status);
  }
  if (data === null) throw new ApiError(`${path} answered HTTP ${response.status}, but not with JSON: is this Monaco?`,
    response.status);
  return data;
}

// What a refusal means when the body is not Monaco's own {"error"} (a proxy or an Ingress in front said it).
const WHY = {
  404: "Monaco's API is not beside this page (HTTP 404).",
  413: "The program or its input is too large for the server (HTTP 413): make it smaller.",
  429: "The server is busy: its queue is full (HTTP 429).",
  502: "Monaco is not answering behind its proxy (HTTP 502): try again in a moment.",
  503: "Monaco is unavailable for now (HTTP 503): try again in a moment.",
  504: "Monaco did not answer in time (HTTP 504): try again in a moment.",
};

/** A failure worth asking again about: no answer at all, or a proxy's 502/503/504. */
export const transient = (error) => error instanceof ApiError && [0, 502, 503, 504].includes(error.status);

export const languages = () => call("GET", "languages");
export const submit = (request) => call("POST", "submit", request);
export const result = (id) => call("GET", `result?id=${encodeURIComponent(id)}`);
export const cancel = (id) => call("DELETE", `submissions/${encodeURIComponent(id)}`);
export const FINISHED = new Set(["completed", "failed"]);
