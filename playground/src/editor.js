// The code editor: CodeMirror 6, with a grammar chosen by the language's name or source file's extension.
// A language added by configuration with none of these falls back to plain text.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { cpp } from "@codemirror/lang-cpp";
import { go } from "@codemirror/lang-go";
import { java } from "@codemirror/lang-java";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { rust } from "@codemirror/lang-rust";
import {
  bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, indentUnit, StreamLanguage,
  syntaxHighlighting,
} from "@codemirror/language";
import { csharp, kotlin, scala } from "@codemirror/legacy-modes/mode/clike";
import { haskell } from "@codemirror/legacy-modes/mode/haskell";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { perl } from "@codemirror/legacy-modes/mode/perl";
import { r } from "@codemirror/legacy-modes/mode/r";
import { ruby } from "@codemirror/legacy-modes/mode/ruby";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { swift } from "@codemirror/legacy-modes/mode/swift";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState } from "@codemirror/state";
import {
  drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers,
  placeholder,
} from "@codemirror/view";

const legacy = (mode) => () => StreamLanguage.define(mode);
const GRAMMARS = {
  py: python, java, c: cpp, h: cpp, cc: cpp, cpp, cxx: cpp, hpp: cpp,
  js: javascript, mjs: javascript, cjs: javascript, ts: () => javascript({ typescript: true }),
  go, rs: rust, rb: legacy(ruby), sh: legacy(shell), bash: legacy(shell), lua: legacy(lua),
  hs: legacy(haskell), kt: legacy(kotlin), cs: legacy(csharp), scala: legacy(scala), swift: legacy(swift),
  pl: legacy(perl), r: legacy(r),
};
// Registry names that say more than their file's extension (javascript's file could be main.mjs).
const BY_NAME = {
  python: "py", java: "java", c: "c", cpp: "cpp", javascript: "js", node: "js", typescript: "ts", go: "go",
  rust: "rs", ruby: "rb", bash: "sh", sh: "sh", lua: "lua", haskell: "hs", kotlin: "kt", csharp: "cs",
  scala: "scala", swift: "swift", perl: "pl", r: "r",
};

/** The grammar key of a language from GET /languages, or null for plain text. */
export function grammarOf(language) {
  const ext = (language.sourceFile.match(/\.([A-Za-z0-9]+)$/) || [])[1]?.toLowerCase();
  const key = BY_NAME[language.name] ?? ext;
  return key && key in GRAMMARS ? key : null;
}

export function createEditor(parent, { nonce, onChange, onRun }) {
  const grammar = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      extensions: [
        EditorView.cspNonce.of(nonce), // its style sheets, under the page's Content-Security-Policy
        keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true), preventDefault: true }]),
        lineNumbers(), highlightActiveLineGutter(), foldGutter(), history(), drawSelection(),
        indentOnInput(), indentUnit.of("    "), bracketMatching(), closeBrackets(), autocompletion(),
        highlightActiveLine(), highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        placeholder("Your program"),
        keymap.of([
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap,
          ...completionKeymap, indentWithTab,
        ]),
        grammar.of([]),
        EditorView.updateListener.of((update) => update.docChanged && onChange()),
        EditorView.contentAttributes.of({ "aria-label": "Program", "aria-describedby": "editor-help" }),
      ],
    }),
  });
  return {
    view,
    get code() { return view.state.doc.toString(); },
    set code(text) { view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }); },
    /** Highlights for `language` (an entry of GET /languages); plain text when no grammar fits. */
    setLanguage(language) {
      const key = grammarOf(language);
      view.dispatch({ effects: grammar.reconfigure(key ? GRAMMARS[key]() : []) });
      view.dom.dataset.grammar = key ?? "plain";
    },
    focus() { view.focus(); },
  };
}
