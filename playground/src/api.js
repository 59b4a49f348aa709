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
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    let message = data.error ?? `${response.status} ${response.statusText}`;
    const retry = response.headers.get("retry-after");
    if (response.status === 429 && retry) message += ` (try again in ${retry} s)`;
    throw new ApiError(message, response.status);
  }
  return data;
}

export const languages = () => call("GET", "languages");
export const submit = (request) => call("POST", "submit", request);
export const result = (id) => call("GET", `result?id=${encodeURIComponent(id)}`);
export const cancel = (id) => call("DELETE", `submissions/${encodeURIComponent(id)}`);
export const FINISHED = new Set(["completed", "failed"]);
