"""envkit ci: continuous integration for a project."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ci as workflows
from .options import EXIT_CODES, emit_json, handles_errors, loaded_matrix


@click.group(name="ci", epilog=EXIT_CODES)
def ci():
    """Continuous integration for a project: envkit ci init writes a GitHub Actions workflow."""


@ci.command(
    "init",
    epilog=EXIT_CODES
    + """

\b
The workflow (.github/workflows/envkit.yml), for each stack in its matrix:
  the entry image with `docker buildx bake` and a registry layer cache (ghcr.io),
  the project image with `envkit build`, `envkit doctor --allow-cpu`,
  `envkit bench . --quick`, and the test command in the image (`envkit run . -- ...`);
  plus a commented-out job for a self-hosted GPU runner.""",
)
@click.argument(
    "folder", default=".", type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--stack",
    "stacks",
    multiple=True,
    metavar="NAME",
    help="Another matrix entry to test the project on (repeatable); envkit.yaml's comes first.",
)
@click.option(
    "--test",
    "test_command",
    metavar="COMMAND",
    help="Test command run in the image [default: envkit.yaml's test, else python -m pytest].",
)
@click.option(
    "--install",
    metavar="REQUIREMENT",
    help="How the workflow installs envkit [default: envkit==<this version>].",
)
@click.option("--force", is_flag=True, help="Replace an existing workflow file.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
@handles_errors
def init(ctx, folder, stacks, test_command, install, force, as_json):
    """Write .github/workflows/envkit.yml into the project: build, doctor, bench and test its
    image on each stack it declares."""
    path, entries = workflows.init_ci(
        folder,
        loaded_matrix(ctx),
        tuple(stacks),
        test_command=test_command,
        install=install,
        force=force,
    )
    if as_json:
        emit_json({"written": str(path), "entries": [e.name for e in entries]})
        return
    click.secho(f"wrote {path}: {', '.join(e.name for e in entries)}", fg="green", err=True)
