"""A project's environment: envkit init."""

from __future__ import annotations

from pathlib import Path

import click

from .. import asof
from .. import init as chooser
from .options import EXIT_CODES, emit_json, handles_errors, loaded_matrix


@click.command(epilog=EXIT_CODES)
@click.argument(
    "folder", default=".", type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--cuda",
    metavar="VER",
    help="Choose a CUDA entry ('11.8', '11', 'cu118') or 'cpu', whatever the host has.",
)
@click.option(
    "--requirements",
    "requirements",
    metavar="FILE",
    help="The requirements file that decides (default requirements.txt); other requirement "
    "files are only noted.",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="YYYY-MM-DD",
    help="Resolve the project's packages as the index was on this date [default: the last "
    "commit touching the dependency files, else the day the entry's torch was superseded].",
)
@click.option("--force", is_flag=True, help="Replace an existing envkit.yaml.")
@click.option("--dry-run", is_flag=True, help="Explain the choice; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the choice as JSON.")
@click.pass_context
@handles_errors
def init(ctx, folder, cuda, requirements, as_of, force, dry_run, as_json):
    """Choose the newest entry that fits the project's torch pins and this host's GPU, and
    write it to envkit.yaml.

    Pins are read from requirements.txt (with its -r/-c includes), pyproject.toml, setup.py
    (never run), setup.cfg, environment.yml, Pipfile.lock or Pipfile; the GPU and driver from
    nvidia-smi. Any stack the facts allow can be chosen (envkit list --all).
    """
    given = asof.checked(as_of) if as_of else None
    choice = chooser.init_project(
        folder,
        loaded_matrix(ctx),
        chooser.detect_host(),
        cuda=cuda,
        requirements=requirements,
    )
    date = (
        asof.AsOf(given, f"as_of {given}: given")
        if given
        else asof.propose(folder, choice.entry.torch)
    )
    path = None if dry_run else chooser.write_choice(folder, choice, force=force)
    if path and date.date:
        asof.record(folder, date.date)
    if as_json:
        emit_json({**choice.to_dict(), "as_of": date.date, "written": str(path) if path else None})
        return
    for line in (*choice.explanation, date.reason):
        click.echo(line, err=True)
    if path:
        click.secho(f"wrote {path}: entry {choice.entry.name}", fg="green", err=True)
    click.echo(choice.entry.name)
