"""The client commands: `run`, `submit`, `status`, `result`, `cancel`, `languages`.

`run` and `result` behave like the program they report on, so that a script or CI job can use them in
its place: the program's stdout and stderr on their own, its exit status as theirs, and a status of its
own for each verdict that is not the program's doing (VERDICT_EXIT). Progress goes to stderr only when
stderr is a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from monaco.cli.client import DEFAULT_URL, Client, ClientError, Exit

# The exit status of `run` and `result` for each verdict that is not the program's own exit status.
# 124 is what timeout(1) exits with; the rest sit beside it, clear of the shell's 126-165.
VERDICT_EXIT = {
    "wrong_answer": 119,
    "compile_error": 120,
    "memory_limit": 121,
    "output_limit": 122,
    "cancelled": 123,
    "timeout": 124,
    "system_error": 125,
}
INTERRUPTED = 130  # Ctrl-C: the submission is cancelled, as a shell reports SIGINT
FINISHED = ("completed", "failed")

EXIT_TABLE = "\n".join(
    [
        "\b",
        "Exit status:",
        "  the program's    ok, runtime_error (1 if it has none, e.g. killed by a signal)",
        f"  {Exit.USAGE.value:<16} bad usage: an unknown option, a FILE that is unreadable, empty or not UTF-8 text",
        f"  {Exit.UNKNOWN_LANGUAGE.value:<16} unknown language, or one the extension does not tell",
        f"  {Exit.TOO_LARGE.value:<16} code or stdin over the server's limit (413)",
        f"  {Exit.REFUSED.value:<16} any other refusal: a limit above the language's maximum (400), an unknown id",
        f"  {Exit.UNREACHABLE.value:<16} no Monaco answers at the URL: unreachable, not Monaco, or failed (5xx)",
        f"  {Exit.QUEUE_FULL.value:<16} the server's queue is full (429)",
        *(f"  {code:<16} {verdict}" for verdict, code in VERDICT_EXIT.items()),
        f"  {INTERRUPTED:<16} interrupted (Ctrl-C); the submission was cancelled",
    ]
)

server_option = click.option(
    "--server",
    envvar="MONACO_URL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="The Monaco to talk to (env MONACO_URL).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the server's whole answer as JSON.")


def _program_options(command: Any) -> Any:
    """The options shared by `run` and `submit`: what to run, with what input and limits."""
    for option in reversed(
        [
            click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
            click.option("-l", "--language", metavar="NAME", help="Language (default: from FILE's extension)."),
            click.option(
                "-i",
                "--stdin",
                "stdin_file",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
                help="Feed this file to the program's stdin (default: this command's stdin when it is not "
                "a terminal, read to its end, else nothing; </dev/null for none).",
            ),
            click.option("-t", "--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                         help="Wall-clock limit of the run (default: the language's)."),
            click.option("-m", "--memory", type=click.IntRange(min=1), metavar="MB",
                         help="Memory limit of the run (default: the language's)."),
            server_option,
        ]
    ):
        command = option(command)
    return command


@click.command(epilog=EXIT_TABLE, short_help="Run FILE and behave like the program.")
@_program_options
@json_option
def run(file: Path, language: str | None, stdin_file: Path | None, timeout: float | None, memory: int | None,
        server: str, as_json: bool) -> int:
    """Run FILE on Monaco and behave like the program.

    Its stdout and stderr are printed on this command's, compiler errors and Monaco's own words (a
    timeout, a memory limit) on stderr, and its exit status is this command's (see below). Ctrl-C
    cancels the run.

    \b
      monaco run hello.py
      monaco run main.c --stdin input.txt
      echo 2 40 | monaco run sum.cpp --timeout 2 --memory 64
      MONACO_URL=http://monaco.example.com monaco run Main.java --json
    """
    client = Client(server)
    submission_id = _submit(client, file, language, stdin_file, timeout, memory)
    return _finish(client, submission_id, as_json)


@click.command(short_help="Queue FILE and print its id.")
@_program_options
def submit(file: Path, language: str | None, stdin_file: Path | None, timeout: float | None, memory: int | None,
           server: str) -> int:
    """Queue FILE on Monaco and print its submission id, without waiting.

    \b
      id=$(monaco submit slow.py) && monaco status "$id" && monaco result "$id"
    """
    click.echo(_submit(Client(server), file, language, stdin_file, timeout, memory))
    return 0


@click.command(short_help="Print the status of a submission.")
@click.argument("submission_id", metavar="ID")
@server_option
@json_option
def status(submission_id: str, server: str, as_json: bool) -> int:
    """Print the status of submission ID, and its verdict once it has finished.

    One line: pending, queued, running, or completed/failed and the verdict (e.g. `failed timeout`).
    """
    answer = Client(server).status(submission_id)
    click.echo(_dumps(answer) if as_json else " ".join(filter(None, [answer["status"], answer.get("verdict")])))
    return 0


@click.command(epilog=EXIT_TABLE, short_help="Wait for a submission and report it as run does.")
@click.argument("submission_id", metavar="ID")
@server_option
@json_option
def result(submission_id: str, server: str, as_json: bool) -> int:
    """Wait for submission ID to finish and report it as `monaco run` does.

    Ctrl-C cancels the submission.
    """
    return _finish(Client(server), submission_id, as_json)


@click.command(short_help="Cancel a queued or running submission.")
@click.argument("submission_id", metavar="ID")
@server_option
@json_option
def cancel(submission_id: str, server: str, as_json: bool) -> int:
    """Cancel submission ID if it is queued or running, and print its status.

    A submission that has already finished cannot be cancelled (exit status 5).
    """
    answer = Client(server).cancel(submission_id)
    click.echo(_dumps(answer) if as_json else " ".join(filter(None, [answer["status"], answer.get("verdict")])))
    return 0


@click.command(short_help="List the languages the server runs.")
@server_option
@json_option
@click.option("--local", is_flag=True,
              help="Print this machine's registry (its settings, MONACO_LANGUAGES_FILE) as JSON, with no server.")
def languages(server: str, as_json: bool, local: bool) -> int:
    """List the languages the server runs: name, version, default and maximum limits.

    The server's list is the one that counts (on Kubernetes it comes from the chart's values); --local
    shows what `monaco serve` would load here.
    """
    if local:
        from monaco.cli.service import print_registry

        print_registry()
        return 0
    answer = Client(server).languages()
    if as_json:
        click.echo(_dumps(answer))
        return 0
    rows = [("NAME", "LANGUAGE", "VERSION", "FILE", "TIMEOUT (MAX)", "MEMORY (MAX)")]
    for lang in answer["languages"]:
        lim = lang["limits"]
        name = lang["name"] + (" *" if lang["name"] == answer.get("default") else "")
        rows.append((name, lang["displayName"], lang["version"], lang["sourceFile"],
                     f"{lim['timeoutSeconds']:g} s ({lim['maxTimeoutSeconds']:g})",
                     f"{lim['memoryMb']} MB ({lim['maxMemoryMb']})"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


COMMANDS = (run, submit, status, result, cancel, languages)


# ---- helpers -----------------------------------------------------------------------------------------


def _dumps(answer: dict[str, Any]) -> str:
    return json.dumps(answer, indent=2, ensure_ascii=False)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"{what} is not UTF-8 text (byte {exc.start})", Exit.USAGE) from None


def _submit(client: Client, file: Path, language: str | None, stdin_file: Path | None, timeout: float | None,
            memory: int | None) -> str:
    code = _text(file.read_bytes(), str(file))
    if not code.strip():
        raise ClientError(f"{file} is empty: there is no program to run", Exit.USAGE)
    if stdin_file is not None and str(stdin_file) != "-":
        stdin = _text(stdin_file.read_bytes(), str(stdin_file))
    elif stdin_file is not None or not sys.stdin.isatty():
        stdin = _text(sys.stdin.buffer.read(), "stdin")
    else:
        stdin = ""
    limits = {k: v for k, v in {"timeoutSeconds": timeout, "memoryMb": memory}.items() if v is not None}
    return client.submit(language or _language_of(client, file), code, stdin, limits)


def _language_of(client: Client, file: Path) -> str:
    """The language whose source file name has FILE's extension, from the server's own registry."""
    known = client.languages()["languages"]
    matches = [lang["name"] for lang in known if Path(lang["sourceFile"]).suffix == file.suffix and file.suffix]
    if len(matches) == 1:
        return str(matches[0])
    names = ", ".join(lang["name"] for lang in known)
    why = f"several languages use {file.suffix!r}" if matches else f"no language uses {file.suffix or 'no'!r} files"
    raise ClientError(f"cannot tell the language of {file}: {why}; pass --language, one of: {names}",
                      Exit.UNKNOWN_LANGUAGE)


def _finish(client: Client, submission_id: str, as_json: bool) -> int:
    """Wait for the submission (cancelling it on Ctrl-C), print it, and return the exit status."""
    progress = sys.stderr.isatty()
    try:
        answer = _wait(client, submission_id, progress)
    except KeyboardInterrupt:
        if progress:
            click.echo("\r\033[K", nl=False, err=True)
        try:
            client.cancel(submission_id)
            click.echo(f"monaco: interrupted: submission {submission_id} cancelled", err=True)
        except ClientError as exc:
            click.echo(f"monaco: interrupted; could not cancel {submission_id}: {exc}", err=True)
        return INTERRUPTED
    if as_json:
        click.echo(_dumps(answer))
    else:
        _report(answer)
    return exit_status(answer)


def _wait(client: Client, submission_id: str, progress: bool) -> dict[str, Any]:
    """Poll /status until the submission has finished (faster at first: most runs take milliseconds)."""
    start, pause = time.monotonic(), 0.01
    try:
        while (state := client.status(submission_id))["status"] not in FINISHED:
            if progress:
                elapsed = time.monotonic() - start
                click.echo(f"\r\033[Kmonaco: {state['status']} {elapsed:.1f} s ({submission_id})", nl=False,
                           err=True)
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
    finally:
        if progress:
            click.echo("\r\033[K", nl=False, err=True)
    return client.result(submission_id)


def _report(answer: dict[str, Any]) -> None:
    """The program's output on ours; the compiler's and Monaco's words on stderr."""
    _write(sys.stdout, answer.get("output") or "")
    _write(sys.stderr, answer.get("stderr") or "")
    verdict = answer.get("verdict")
    if verdict == "compile_error":
        _write(sys.stderr, answer.get("compileOutput") or "")
    if verdict in VERDICT_EXIT:
        detail = answer.get("message") or ""
        click.echo(f"monaco: {verdict.replace('_', ' ')}{': ' + detail if detail else ''}", err=True)
    if answer.get("truncated") and verdict != "output_limit":
        click.echo("monaco: the output was cut at the server's limit", err=True)


def _write(stream: Any, text: str) -> None:
    stream.flush()
    stream.buffer.write(text.encode("utf-8", "replace"))
    stream.buffer.flush()


def exit_status(answer: dict[str, Any]) -> int:
    """The program's exit status for ok and runtime_error, VERDICT_EXIT's for the others."""
    verdict = answer.get("verdict")
    if verdict in VERDICT_EXIT:
        return VERDICT_EXIT[verdict]
    code = answer.get("exitCode")
    if verdict == "ok":
        return 0
    return code if isinstance(code, int) and 0 < code < 256 else 1
