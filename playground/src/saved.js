// What the playground keeps: a link that reopens a program (the URL's fragment, never sent to a server),
// and, in this browser's localStorage, the last runs and the program being written.
const HISTORY_KEY = "monaco.playground.history";
const DRAFT_KEY = "monaco.playground.draft";
export const HISTORY_SIZE = 10;

function toBase64Url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

/** The fragment of a link to `program`: {language, code, input, timeoutSeconds?, memoryMb?}. */
export function toFragment(program) {
  return `#run=${toBase64Url(JSON.stringify(program))}`;
}

/** The program a fragment holds, or null when it holds none (or a broken one). */
export function fromFragment(hash) {
  const match = /^#run=([A-Za-z0-9_-]+)$/.exec(hash);
  if (!match) return null;
  try {
    const program = JSON.parse(fromBase64Url(match[1]));
    return typeof program?.language === "string" && typeof program.code === "string" ? program : null;
  } catch {
    return null;
  }
}

function load(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // full or disabled storage: the page works without it
  }
}

export const history = () => load(HISTORY_KEY, []).filter((run) => run && typeof run.code === "string");
export const clearHistory = () => store(HISTORY_KEY, []);

/** Adds a finished run at the top of the history and returns the history. */
export function remember(run) {
  const runs = [run, ...history()].slice(0, HISTORY_SIZE);
  store(HISTORY_KEY, runs);
  return runs;
}

export const draft = () => load(DRAFT_KEY, null);
export const saveDraft = (program) => store(DRAFT_KEY, program);
