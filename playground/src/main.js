// The playground page: pick a language, write a program and its stdin, run it, read the result.
import "./style.css";
import * as api from "./api.js";
import { createEditor, grammarOf } from "./editor.js";
import { ago, describe, duration, memory, sentence } from "./format.js";
import { SAMPLE_INPUT, sampleFor } from "./samples.js";
import * as saved from "./saved.js";

const $ = (id) => document.getElementById(id);
const ui = {
  language: $("language"), timeout: $("timeout"), memory: $("memory"), run: $("run"), cancel: $("cancel"),
  share: $("share"), stdin: $("stdin"), verdict: $("verdict"), verdictText: $("verdict-text"), detail: $("detail"),
  figures: $("figures"), time: $("time"), mem: $("mem"), exit: $("exit"), total: $("total"),
  history: $("history"), clearHistory: $("clear-history"), status: $("status"),
};
const streams = { compileOutput: "compile-output", output: "stdout", stderr: "stderr" };

let registry = new Map(); // name -> an entry of GET /languages
let codes = {}; // language name -> the program last written in it, this session and in the draft
let running = null; // while a run is in flight: {id} once the server has accepted it, {cancel} if asked before

const editor = createEditor($("editor"), {
  nonce: document.querySelector('meta[name="monaco-nonce"]').content,
  onChange: () => keepDraft(),
  onRun: () => run(),
});

if (/Mac|iPhone|iPad/.test(navigator.platform)) $("shortcut").textContent = "⌘+Enter";

// ---- the language and its limits

function current() {
  return registry.get(ui.language.value);
}

function showLimits(language, wanted = {}) {
  const { timeoutSeconds, memoryMb, maxTimeoutSeconds, maxMemoryMb } = language.limits;
  ui.timeout.max = maxTimeoutSeconds;
  ui.memory.max = maxMemoryMb;
  ui.timeout.placeholder = timeoutSeconds;
  ui.memory.placeholder = memoryMb;
  ui.timeout.value = wanted.timeoutSeconds ?? timeoutSeconds;
  ui.memory.value = wanted.memoryMb ?? memoryMb;
  ui.timeout.title = `default ${timeoutSeconds} s, at most ${maxTimeoutSeconds} s`;
  ui.memory.title = `default ${memoryMb} MB, at most ${maxMemoryMb} MB`;
}

function selectLanguage(name, { code, limits } = {}) {
  const previous = ui.language.dataset.shown;
  if (previous) codes[previous] = editor.code;
  ui.language.value = name;
  ui.language.dataset.shown = name;
  const language = current();
  editor.setLanguage(language);
  editor.code = code ?? codes[name] ?? sampleFor(grammarOf(language));
  showLimits(language, limits);
  keepDraft();
}

/** The limits as typed, or null (and the browser says why) when one is outside the language's range. */
function limits() {
  for (const input of [ui.timeout, ui.memory]) {
    if (!input.checkValidity()) {
      input.reportValidity();
      return null;
    }
  }
  const chosen = {};
  if (ui.timeout.value !== "") chosen.timeoutSeconds = Number(ui.timeout.value);
  if (ui.memory.value !== "") chosen.memoryMb = Number(ui.memory.value);
  return chosen;
}

function program() {
  return { language: ui.language.value, code: editor.code, input: ui.stdin.value };
}

function keepDraft() {
  if (!ui.language.dataset.shown) return;
  codes[ui.language.value] = editor.code;
  saved.saveDraft({ language: ui.language.value, input: ui.stdin.value, codes });
}

// ---- running

function setBusy(busy) {
  ui.run.disabled = busy;
  ui.cancel.hidden = !busy;
  ui.cancel.disabled = false;
  ui.language.disabled = busy;
}

function showVerdict(title, colour, sentence) {
  ui.verdict.className = `verdict ${colour}`;
  ui.verdictText.textContent = title;
  ui.detail.textContent = sentence;
}

function clearResult() {
  ui.figures.hidden = true;
  for (const id of Object.values(streams)) {
    $(id).textContent = "";
    $(id).parentElement.hidden = true;
  }
}

function showResult(result, chosen) {
  const language = registry.get(result.language) ?? current();
  const limitsUsed = { ...language.limits, ...chosen };
  showVerdict(...describe(result, limitsUsed));
  ui.verdict.dataset.verdict = result.verdict;
  ui.time.textContent = duration(result.executionTimeMs ?? result.executionTime);
  ui.mem.textContent = memory(result.memoryKb);
  ui.exit.textContent = result.exitCode ?? "–";
  ui.total.textContent = duration(result.totalTime);
  ui.figures.hidden = false;
  for (const [field, id] of Object.entries(streams)) {
    const text = result[field] ?? "";
    $(id).textContent = text;
    // stdout is always shown once a program ran (empty output is an answer too); the others when they say something
    $(id).parentElement.hidden = field === "output" ? result.verdict === "compile_error" && !text : !text;
  }
  if (!result.output && result.verdict !== "compile_error") $("stdout").textContent = "(no output)";
  for (const [field, id] of [["output", "stdout-box"], ["stderr", "stderr-box"]]) {
    $(id).classList.toggle("truncated", Boolean(result.truncated && result[field]));
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const REFUSALS = { 413: "Too large", 429: "Server busy" };
const RECONNECT_SECONDS = 60; // how long a run in flight waits for a server that stopped answering

/** The result of a run in flight; a server that stops answering for a while (a restart, a proxy's 502) is
 * asked again, with the page saying so, before the run is given up. */
async function poll(id) {
  const since = Date.now();
  for (let wait = 500; ; wait = Math.min(wait * 2, 5000)) {
    try {
      return await api.result(id);
    } catch (error) {
      if (!api.transient(error) || Date.now() - since > RECONNECT_SECONDS * 1000) throw error;
      showVerdict("Reconnecting", "busy", `${error.message} Asking again…`);
      await pause(wait);
    }
  }
}

async function run() {
  if (running || !current()) return;
  const chosen = limits();
  if (!chosen) return;
  const request = { ...program(), ...chosen };
  clearResult();
  setBusy(true);
  showVerdict("Submitting", "busy", "Sending the program to Monaco…");
  ui.verdict.dataset.verdict = "";
  delete ui.verdict.dataset.error;
  running = {};
  try {
    const { id } = await api.submit(request);
    running.id = id;
    if (running.cancel) await api.cancel(id).catch(() => {}); // asked for while the program was on its way
    let result;
    for (let wait = 100; ; wait = Math.min(wait * 1.5, 1000)) {
      result = await poll(id);
      if (api.FINISHED.has(result.status)) break;
      const queued = result.status !== "running";
      if (!running.cancel) {
        showVerdict(queued ? "Queued" : "Running", "busy",
          queued ? "Waiting for a free sandbox…" : "The program is running…");
      }
      await pause(wait);
    }
    showResult(result, chosen);
    renderHistory(saved.remember({
      at: Date.now(), ...request, verdict: result.verdict, executionTimeMs: result.executionTimeMs ?? null,
    }));
  } catch (error) {
    const title = !(error instanceof api.ApiError) || api.transient(error) ? "Cannot reach Monaco"
      : REFUSALS[error.status] ?? "Not accepted";
    const said = sentence(error.message);
    showVerdict(title, "bad", running.id ? `${said} The run's id is ${running.id}.` : said);
    ui.verdict.dataset.verdict = "";
    ui.verdict.dataset.error = String(error.status ?? 0);
  } finally {
    running = null;
    setBusy(false);
  }
}

async function cancel() {
  if (!running) return;
  ui.cancel.disabled = true;
  showVerdict("Cancelling", "busy", "Stopping the program…");
  running.cancel = true;
  if (!running.id) return; // run() cancels it as soon as the server has given it an id
  try {
    await api.cancel(running.id);
  } catch (error) {
    if (error.status !== 409) status(error.message); // 409: it finished meanwhile; the poll shows how
  }
}

// ---- the history and the link

function renderHistory(runs) {
  ui.history.replaceChildren();
  if (!runs.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "None yet: they are kept in this browser.";
    ui.history.append(li);
    return;
  }
  for (const entry of runs) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    const [title, colour] = describe(entry, {});
    const name = registry.get(entry.language)?.displayName ?? entry.language;
    const firstLine = entry.code.split("\n").find((line) => line.trim()) ?? "";
    button.className = colour;
    const when = `${ago(entry.at)}${entry.executionTimeMs != null ? ` · ${duration(entry.executionTimeMs)}` : ""}`;
    for (const [part, text] of [["dot", ""], ["what", `${title} · ${name}`], ["code", firstLine.trim()], ["when", when]]) {
      const span = document.createElement("span");
      span.className = part;
      span.textContent = text;
      button.append(span);
    }
    button.title = "Open this program again";
    button.addEventListener("click", () => open(entry));
    li.append(button);
    ui.history.append(li);
  }
}

/** Opens a program (from a link or the history) in the editor; false when its language is not served. */
function open(entry) {
  if (!registry.has(entry.language)) {
    status(`This server has no language "${entry.language}".`);
    return false;
  }
  selectLanguage(entry.language, { code: entry.code, limits: entry });
  ui.stdin.value = entry.input ?? "";
  keepDraft();
  return true;
}

async function share() {
  const chosen = limits() ?? {};
  const link = new URL(location.href);
  link.hash = saved.toFragment({ ...program(), ...chosen });
  history.replaceState(null, "", link);
  try {
    await navigator.clipboard.writeText(link.href);
    status("Link copied: it opens this program, language and input.");
  } catch {
    status("The link to this program is in the address bar.");
  }
}

let statusTimer;
function status(text) {
  ui.status.textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => (ui.status.textContent = ""), 6000);
}

// ---- start

async function start() {
  let listing;
  try {
    listing = await api.languages();
  } catch (error) {
    showVerdict("Cannot load the languages", "bad", error.message);
    return;
  }
  registry = new Map(listing.languages.map((language) => [language.name, language]));
  ui.language.replaceChildren(...listing.languages.map((language) => {
    const option = document.createElement("option");
    option.value = language.name;
    option.textContent = `${language.displayName} (${language.version})`;
    return option;
  }));
  ui.language.disabled = false;
  ui.run.disabled = false;

  const draft = saved.draft();
  if (draft && typeof draft.codes === "object") codes = { ...draft.codes };
  const linked = saved.fromFragment(location.hash);
  // A link's program, once open, is the draft: a reload keeps what was written since, and the address bar
  // holds a link again only when asked to (Copy link).
  if (linked) history.replaceState(null, "", location.pathname + location.search);
  if (!(linked && open(linked))) {
    const name = [draft?.language, listing.default].find((n) => registry.has(n)) ?? listing.languages[0].name;
    selectLanguage(name);
    ui.stdin.value = draft ? draft.input ?? "" : SAMPLE_INPUT;
  }
  renderHistory(saved.history());
  editor.focus();
}

ui.language.addEventListener("change", () => selectLanguage(ui.language.value));
ui.stdin.addEventListener("input", () => keepDraft());
ui.run.addEventListener("click", () => run());
ui.cancel.addEventListener("click", () => cancel());
ui.share.addEventListener("click", () => share());
ui.clearHistory.addEventListener("click", () => renderHistory((saved.clearHistory(), [])));
window.addEventListener("hashchange", () => {
  const linked = saved.fromFragment(location.hash);
  if (linked && open(linked)) history.replaceState(null, "", location.pathname + location.search);
});
// Ctrl/Cmd+Enter runs from anywhere on the page (the editor has its own binding, which comes first).
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
    event.preventDefault();
    run();
  }
});
start();
