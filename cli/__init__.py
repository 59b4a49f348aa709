"""The `monaco` command: `serve` and `operator` run the service; `run`, `submit`, `status`, `result`,
`cancel` and `languages` are the client of its HTTP API.

It sits above both (core/ is the leaf they share, and imports neither); `python -m monaco.cli` runs it too.
Built on click (uvicorn's own dependency): one subcommand per function, `--help` written once, and
environment variables (MONACO_URL) read by the option that they stand for.
"""

from __future__ import annotations

import click

from monaco.cli import commands, service
from monaco.cli.client import ClientError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def monaco() -> None:
    """Run untrusted programs over HTTP, safely.

    `monaco serve` starts the service on this machine; `monaco run hello.py` runs a program on it (or
    on the one at --server / MONACO_URL) and behaves like the program: its output, its exit status.
    """


for command in (*service.COMMANDS, *commands.COMMANDS):
    monaco.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """The console script: the exit status of the command, click's for usage errors (2)."""
    try:
        status = monaco.main(args=argv, prog_name="monaco", standalone_mode=False)
    except ClientError as exc:
        click.echo(f"monaco: {exc}", err=True)
        return int(exc.status)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.Abort:  # Ctrl-C or EOF outside `run` and `result`, which cancel or leave on their own
        click.echo("", err=True)
        return 130
    return int(status) if isinstance(status, int) else 0


__all__ = ["main", "monaco"]
