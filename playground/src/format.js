// How a result reads to a person: each verdict in words (with a colour class), times and sizes.
const VERDICTS = {
  ok: ["OK", "good", () => "The program ran and exited with status 0."],
  compile_error: ["Compile error", "bad", () => "The compiler refused the program: its output is below."],
  wrong_answer: ["Wrong answer", "bad", () => "The program exited with status 0, but its output is not the expected one."],
  runtime_error: ["Runtime error", "bad", (r) =>
    r.signalName ? `The program was killed by ${r.signalName}.`
      : r.exitCode == null ? "The program failed." : `The program exited with status ${r.exitCode}.`],
  timeout: ["Time limit exceeded", "limit", (r, limits) =>
    `The program was still running after ${limits.timeoutSeconds} s, and was stopped.`],
  memory_limit: ["Memory limit exceeded", "limit", (r, limits) =>
    `The program needed more than ${limits.memoryMb} MB of memory, and was stopped.`],
  output_limit: ["Output limit exceeded", "limit", () =>
    "The program wrote more than the server keeps; what is shown is cut at the limit."],
  cancelled: ["Cancelled", "off", () => "The run was cancelled."],
  system_error: ["System error", "system", () => "Monaco could not run the program; this is not the program's fault."],
};

/** [title, colour class, sentence] of a finished result: the server's own explanation when it gave one. */
export function describe(result, limits) {
  const [title, colour, explain] = VERDICTS[result.verdict] ?? [result.verdict, "system", () => ""];
  return [title, colour, sentence(result.message ?? "") || explain(result, limits)];
}

/** A message as a sentence: capital first, full stop last; empty stays empty. */
export function sentence(text) {
  const message = text.trim();
  return message && `${message[0].toUpperCase()}${message.slice(1)}${/[.!?]$/.test(message) ? "" : "."}`;
}

export function duration(ms) {
  if (ms == null) return "–";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function memory(kb) {
  if (kb == null) return "–";
  if (kb < 1024) return `${kb} KB`;
  return `${(kb / 1024).toFixed(kb < 10 * 1024 ? 1 : 0)} MB`;
}

export function ago(then, now = Date.now()) {
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(then).toLocaleDateString();
}
