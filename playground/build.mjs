// Builds the playground into api/static/playground/, where Monaco serves it from and the wheel ships it:
// one JavaScript bundle (CodeMirror and the page), one stylesheet, the page and its icon, and the licences
// of the bundled packages. `make playground` runs `npm ci` (package-lock.json) and then this script.
//
// build-stamp.json records a hash of every input and of every output, so a test (tests/test_playground.py)
// fails when a source was changed without a rebuild, or a built file by hand. The build is deterministic:
// the same lock file and sources give the same bytes.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "api", "static", "playground");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// What the build reads, besides node_modules (which package-lock.json pins): keep in step with
// tests/test_playground.py, which recomputes this hash without node.
function sourcesHash() {
  const files = ["package.json", "package-lock.json", "build.mjs"];
  for (const name of readdirSync(join(here, "src")).sort()) files.push(`src/${name}`);
  return sha256(files.map((f) => `${f} ${sha256(readFileSync(join(here, f)))}\n`).join(""));
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, "src", "main.js")],
  outfile: join(out, "app.js"), // and app.css, from the stylesheet main.js imports
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  legalComments: "none", // the licences go to licenses.txt instead, whole
  metafile: true,
  logLevel: "warning",
});

// Every bundled package's licence, once: what their MIT licences ask of a redistributed copy.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.add(match[1]);
}
const licences = [...packages].sort().map((name) => {
  const dir = join(here, "node_modules", name);
  const { version, license } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const text = file ? readFileSync(join(dir, file), "utf8").trim() : `${license} (no licence file in the package)`;
  return `${name} ${version}\n\n${text}\n`;
});
writeFileSync(
  join(out, "licenses.txt"),
  `The Monaco playground bundles these packages (app.js, app.css):\n\n${licences.join(`\n${"-".repeat(72)}\n\n`)}`,
);

for (const name of ["index.html", "favicon.svg"]) copyFileSync(join(here, "src", name), join(out, name));

const outputs = {};
for (const name of readdirSync(out).sort()) outputs[name] = sha256(readFileSync(join(out, name)));
const stamp = { sources: sourcesHash(), outputs };
writeFileSync(join(here, "build-stamp.json"), `${JSON.stringify(stamp, null, 2)}\n`);
for (const [name, digest] of Object.entries(outputs)) {
  const size = readFileSync(join(out, name)).length;
  console.log(`${relative(join(here, ".."), join(out, name))}  ${size} bytes  sha256 ${digest.slice(0, 16)}…`);
}
