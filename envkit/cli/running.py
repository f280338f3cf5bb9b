"""Commands in an entry's image: envkit run, shell."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import engine
from .. import run as runner
from .options import EXIT_CODES, handles_errors, image_for, run_options


def _run(ctx, name, command, *, tag_prefix, interactive, tty, **settings):
    image, entry = image_for(ctx, name, tag_prefix)
    spec, note = runner.spec_for(
        image,
        entry,
        tuple(command),
        workdir=Path.cwd(),
        interactive=interactive,
        tty=tty,
        **settings,  # gpus, user, shm_size, ipc_host, env: as spec_for names them
    )
    if note:
        click.secho(f"note: {note}", fg="yellow", err=True)
    code = engine.run_attached(spec)
    if code == 125:
        click.secho(
            "error: Docker could not run the container (its message is above)", fg="red", err=True
        )
        click.echo(
            "fix: check with `envkit doctor "
            + entry
            + "`"
            + ("; or run with --gpus none" if spec.gpus else ""),
            err=True,
        )
    sys.exit(code)


@click.command(
    epilog="""\b
Exit code: the command's own exit code; 2 for bad usage; 125 when Docker could not run it.
The current folder is mounted at /workspace (the working directory); the container is
removed when the command ends or on Ctrl-C. Standard input reaches the command when it is a
terminal, or with -i (envkit run -i NAME -- python - < train.py); without -i a loop such as
`while read f; do envkit run NAME -- cmd "$f"; done < list` keeps its input.""",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "-i",
    "--interactive",
    "attach_stdin",
    is_flag=True,
    help="Pass piped or redirected standard input to the command (as docker run -i).",
)
@run_options
@click.pass_context
@handles_errors
def run(ctx, name, command, attach_stdin, **settings):
    """Run a command in an entry's image: envkit run NAME -- python train.py

    NAME '.' means the project image built from ./envkit.yaml (`envkit build` in that folder).
    """
    _run(
        ctx,
        name,
        command,
        interactive=attach_stdin or sys.stdin.isatty(),
        tty=sys.stdin.isatty() and sys.stdout.isatty(),
        **settings,
    )


@click.command(epilog=EXIT_CODES)
@click.argument("name")
@run_options
@click.pass_context
@handles_errors
def shell(ctx, name, **settings):
    """An interactive bash in an entry's image, the current folder at /workspace."""
    _run(ctx, name, ("bash",), interactive=True, tty=sys.stdin.isatty(), **settings)
