"""The matrix and its entries: envkit list, show, check, dockerfile, matrix."""

from __future__ import annotations

import json
import sys

import click

from .. import check as rules
from .. import credentials, matrix, stacks
from .. import dockerfile as render
from ..errors import BadInput, MatrixError
from ..gpu import fit
from ..table import format_table
from .options import (
    EXIT_CODES,
    emit_json,
    entry_filters,
    handles_errors,
    loaded_matrix,
    select_entries,
)

ALL_HELP = (
    "Every stack the facts allow (torch release x CUDA/CPU build x Python), curated names "
    "where matrix.yaml has one, derived names (torch1.7.0-cu102-py3.8) otherwise."
)


def _space_entries(ctx, torch_spec, cuda, python, flavour, whole: bool):
    """The (filtered) entries of the matrix, or of the whole space of stacks with --all."""
    if not whole:
        return select_entries(ctx, torch_spec, cuda, python, flavour)[1]
    space = stacks.whole_space(loaded_matrix(ctx).entries)
    selected = matrix.select(space, torch=torch_spec, cuda=cuda, python=python, flavour=flavour)
    if not selected:
        raise BadInput("no stack matches the filters given", "loosen a filter")
    return selected


@click.command("list", epilog=EXIT_CODES)
@entry_filters
@click.option("--all", "whole", is_flag=True, help=ALL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of entries.")
@click.pass_context
@handles_errors
def list_cmd(ctx, torch_spec, cuda, python, flavour, whole, as_json):
    """List matrix entries (one row each), optionally filtered. --all lists every stack."""
    entries = _space_entries(ctx, torch_spec, cuda, python, flavour, whole)
    if as_json:
        emit_json(credentials.redact_data([e.to_dict() for e in entries]))
        return
    rows = [
        [
            e.name,
            e.torch,
            e.torchvision,
            e.torchaudio,
            e.cuda or "cpu",
            e.cudnn,
            e.python,
            e.flavour,
        ]
        for e in entries
    ]
    click.echo(
        format_table(
            ["NAME", "TORCH", "VISION", "AUDIO", "CUDA", "CUDNN", "PYTHON", "FLAVOUR"], rows
        )
    )
    if whole:
        curated = {e.name for e in loaded_matrix(ctx).entries}
        derived = sum(e.name not in curated for e in entries)
        click.echo(
            f"{len(entries)} stacks ({len(entries) - derived} curated, {derived} derived)", err=True
        )
    else:
        click.echo(f"{len(entries)} entries", err=True)


@click.command(epilog=EXIT_CODES)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@click.pass_context
@handles_errors
def show(ctx, name, as_json):
    """Everything about one entry: versions, base, index, pins, facts it was checked against."""
    entry = loaded_matrix(ctx).get(name)
    data = credentials.redact_data({**entry.to_dict(), **fit.profile(entry)})
    if as_json:
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(value) if value else "-"
        click.echo(f"{key.ljust(width)}  {'-' if value in (None, '') else value}")


@click.command(
    epilog="""\b
Exit codes:
  0  the file is clean (warnings may be printed)
  1  rules failed (impossible pairings, unpublished variants, ...)
  2  the file is unusable (YAML or schema errors)"""
)
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--all",
    "whole",
    is_flag=True,
    help="Also apply every rule to each derived stack the facts allow (envkit list --all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
@click.pass_context
@handles_errors
def check(ctx, file, whole, as_json):
    """Validate a matrix file: schema, then rules over the facts (pairings, variants, Pythons).

    Each problem prints as FILE:LINE: message — fix. With --all, every derived stack is
    checked too; its problems print as NAME (derived):0.
    """
    path = file or ctx.obj.get("matrix_path")
    try:
        loaded = matrix.load(path)
    except MatrixError as exc:
        if as_json:
            problems = [{**vars(p), "fix": p.fix or exc.fix} for p in exc.problems]
            emit_json(credentials.redact_data({"ok": False, "usable": False, "problems": problems}))
            sys.exit(2)
        raise
    problems = rules.check(loaded)
    derived = 0
    if whole:
        derived, derived_problems = rules.check_stacks(loaded)
        problems += derived_problems
    failed = bool(rules.errors(problems))
    if as_json:
        emit_json(
            {
                "ok": not failed,
                "usable": True,
                "entries": len(loaded.entries),
                "derived": derived,
                "problems": credentials.redact_data([vars(p) for p in problems]),
            }
        )
    else:
        for problem in problems:
            colour = "red" if problem.severity == "error" else "yellow"
            prefix = "" if problem.severity == "error" else "warning: "
            click.secho(credentials.redact(f"{prefix}{problem}"), fg=colour)
        errors = len(rules.errors(problems))
        checked = f"{len(loaded.entries)} entries" + (
            f" and {derived} derived stacks" if whole else ""
        )
        click.echo(
            f"{loaded.path}: {checked}, {errors} errors, {len(problems) - errors} warnings",
            err=True,
        )
    sys.exit(1 if failed else 0)


@click.command(epilog=EXIT_CODES)
@click.argument("name")
@click.pass_context
@handles_errors
def dockerfile(ctx, name):
    """Print the rendered Dockerfile for an entry."""
    click.echo(credentials.redact(render.render(loaded_matrix(ctx).get(name))), nl=False)


@click.command("matrix", epilog=EXIT_CODES)
@entry_filters
@click.option("--all", "whole", is_flag=True, help=ALL_HELP)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["github", "names"]),
    default="github",
    show_default=True,
    help="github: JSON for strategy.matrix; names: one per line.",
)
@click.pass_context
@handles_errors
def matrix_cmd(ctx, torch_spec, cuda, python, flavour, whole, fmt):
    """Emit the (filtered) matrix for CI: `{"include": [...]}` for GitHub Actions."""
    entries = _space_entries(ctx, torch_spec, cuda, python, flavour, whole)
    if fmt == "names":
        click.echo("\n".join(e.name for e in entries))
        return
    include = [
        {
            "name": e.name,
            "torch": e.torch,
            "torchvision": e.torchvision,
            "cuda": e.cuda or "cpu",
            "python": e.python,
            "flavour": e.flavour,
        }
        for e in entries
    ]
    click.echo(json.dumps({"include": include}, separators=(",", ":")))
