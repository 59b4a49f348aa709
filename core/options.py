"""The judge's fields of a submission (issue 11), checked once for both back ends: by the API before it
stores a submission, and by the operator again before it builds a sandbox from a CodeSubmission (which
anyone with RBAC can create without the API).

Every refusal names the field and what to change: 400 for a bad value, 413 for one over a size bound.
"""

from __future__ import annotations

import re
from typing import Any

from monaco.core.languages import Language
from monaco.core.models import (
    FILE_NAME_PATTERN,
    MAX_ARG_BYTES,
    MAX_ARGS,
    MAX_ARGS_TOTAL_BYTES,
    MAX_COMPILER_OPTION_BYTES,
    MAX_COMPILER_OPTIONS,
    MAX_FILES,
    MAX_TEST_CASES,
    RunSpec,
    SubmitRequest,
)

# Names the runner and the back ends use in the source dir; a file of the submission must not take them.
RESERVED_NAMES = re.compile(r"^(stdin(-[0-9]+)?|monaco-init)$")
_FILE_NAME = re.compile(FILE_NAME_PATTERN)
SPEC_FIELDS = tuple(field.alias or name for name, field in RunSpec.model_fields.items())


class OptionError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bytes(text: str) -> int:
    return len(text.encode())


def request_spec(req: SubmitRequest, language: Language, *, max_code_bytes: int, max_input_bytes: int) -> RunSpec:
    """The RunSpec of a POST /submit body, checked; raises OptionError."""
    if req.test_cases is not None and not req.test_cases:
        raise OptionError(400, "'testCases' is empty; give at least one case, or leave the field out")
    spec = RunSpec(
        expected_output=req.expected_output,
        test_cases=tuple(req.test_cases) if req.test_cases is not None else (),
        args=tuple(req.args or ()),
        files=tuple(req.files or ()),
        compiler_options=tuple(req.compiler_options or ()),
        redirect_stderr_to_stdout=req.redirect_stderr_to_stdout,
    )
    check(spec, language, code=req.code, stdin=req.input, max_code_bytes=max_code_bytes,
          max_input_bytes=max_input_bytes)
    return spec


def spec_of_resource(spec: dict[str, Any]) -> RunSpec:
    """The RunSpec a CodeSubmission's spec carries (its fields have the wire's names)."""
    return RunSpec.model_validate({k: spec[k] for k in SPEC_FIELDS if spec.get(k) is not None})


def check(spec: RunSpec, language: Language, *, code: str, stdin: str, max_code_bytes: int,
          max_input_bytes: int) -> None:
    _check_cases(spec, stdin, max_input_bytes)
    _check_args(spec.args)
    _check_files(spec, language, code, max_code_bytes)
    _check_compiler_options(spec.compiler_options, language)


def _check_cases(spec: RunSpec, stdin: str, max_input_bytes: int) -> None:
    if spec.test_cases and (stdin or spec.expected_output is not None):
        raise OptionError(400, "'testCases' replaces 'input' and 'expectedOutput': give each case its own "
                               "'input' and 'expectedOutput', and leave the top-level ones out")
    if len(spec.test_cases) > MAX_TEST_CASES:
        raise OptionError(413, f"'testCases' has {len(spec.test_cases)} cases; the limit is {MAX_TEST_CASES}")
    texts = [stdin, spec.expected_output or ""]
    for case in spec.test_cases:
        texts += [case.input, case.expected_output or ""]
    total = sum(_bytes(t) for t in texts)
    if total > max_input_bytes:
        raise OptionError(413, f"the inputs and expected outputs are {total} bytes together; the limit is "
                               f"{max_input_bytes} bytes")


def _check_strings(field: str, items: tuple[str, ...], what: str, max_count: int, max_bytes: int,
                   nul: str = "") -> None:
    """A list of strings bounded in count and in bytes each, none holding a NUL (`nul`: why, if said)."""
    if len(items) > max_count:
        raise OptionError(413, f"'{field}' has {len(items)} {what}; the limit is {max_count}")
    for i, item in enumerate(items):
        if "\x00" in item:
            raise OptionError(400, f"'{field}[{i}]' contains a NUL character{nul}")
        if _bytes(item) > max_bytes:
            raise OptionError(413, f"'{field}[{i}]' is {_bytes(item)} bytes; the limit is {max_bytes} bytes")


def _check_args(args: tuple[str, ...]) -> None:
    _check_strings("args", args, "arguments", MAX_ARGS, MAX_ARG_BYTES, nul=", which no argument can hold")
    total = sum(_bytes(a) for a in args)
    if total > MAX_ARGS_TOTAL_BYTES:
        raise OptionError(413, f"'args' are {total} bytes together; the limit is {MAX_ARGS_TOTAL_BYTES} bytes")


def _check_files(spec: RunSpec, language: Language, code: str, max_code_bytes: int) -> None:
    if len(spec.files) > MAX_FILES:
        raise OptionError(413, f"'files' has {len(spec.files)} files; the limit is {MAX_FILES}")
    seen: set[str] = set()
    for i, f in enumerate(spec.files):
        shown = repr(f.name[:80])
        if not _FILE_NAME.match(f.name) or f.name in (".", ".."):
            raise OptionError(400, f"'files[{i}].name' {shown} is not a plain file name: use 1 to 64 letters, "
                                   "digits, '.', '_' or '-', not starting with '.' or '-' (no '/', no path)")
        if f.name == language.source_file:
            raise OptionError(400, f"'files[{i}].name' {shown} is the name of the main source file of "
                                   f"{language.name}; send that in 'code'")
        if RESERVED_NAMES.match(f.name):
            raise OptionError(400, f"'files[{i}].name' {shown} is reserved by Monaco; choose another name")
        if f.name in seen:
            raise OptionError(400, f"'files[{i}].name' {shown} is given twice; file names must be unique")
        seen.add(f.name)
        if "\x00" in f.content:
            raise OptionError(400, f"'files[{i}].content' contains a NUL character")
    total = _bytes(code) + sum(_bytes(f.content) for f in spec.files)
    if spec.files and total > max_code_bytes:
        raise OptionError(413, f"'code' and 'files' are {total} bytes together; the limit is {max_code_bytes} bytes")


def compiler_option_problem(options: tuple[str, ...], language: Language) -> str | None:
    """Why `options` cannot be given to the compiler of `language`, or None when every one is allowed.

    Each option must match one of the language's patterns whole; a pattern holding a space matches an
    option together with the next one (`-encoding UTF-8`)."""
    patterns = [re.compile(p) for p in language.compiler_options]
    i = 0
    while i < len(options):
        option = options[i]
        if any(p.fullmatch(option) for p in patterns):
            i += 1
        elif i + 1 < len(options) and any(p.fullmatch(f"{option} {options[i + 1]}") for p in patterns):
            i += 2
        else:
            return f"compiler option {option[:80]!r} is not allowed for {language.name}"
    return None


def _check_compiler_options(options: tuple[str, ...], language: Language) -> None:
    if not options:
        return
    if not language.compiles:
        raise OptionError(400, f"'compilerOptions': {language.name} is not compiled; leave the field out")
    _check_strings("compilerOptions", options, "options", MAX_COMPILER_OPTIONS, MAX_COMPILER_OPTION_BYTES)
    problem = compiler_option_problem(options, language)
    if problem:
        raise OptionError(400, f"'compilerOptions': {problem} (it may read or write files, load code or run "
                               "commands, or is not in the safe set; GET /languages lists the allowed ones)")
