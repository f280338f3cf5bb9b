"""The envkit command line: parse options, call one core function, render its result.

Each command lives in a module of this package, imported only when that command runs (or its
own --help is asked for): `envkit list` never imports the engine, and `envkit --help` lists the
commands from the table below without importing any of them.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

import click

from .. import __version__
from ..errors import Terminated
from .options import EXIT_CODES, catch_interrupts


class CommandInfo(NamedTuple):
    """Where a command lives, and the summary `envkit --help` lists for it (the first sentence
    of the command's own help, as Click would shorten it; a test keeps the two equal)."""

    module: str
    function: str
    summary: str


COMMANDS: dict[str, CommandInfo] = {
    "bake": CommandInfo(
        "building",
        "bake",
        "Write a docker-bake.json that builds the (filtered) matrix with `docker buildx bake`.",
    ),
    "base": CommandInfo(
        "base",
        "base",
        "Make a local base image for Python X.Y without a registry, and remember it as that "
        "Python's base image (setting base_images.X.Y).",
    ),
    "bench": CommandInfo(
        "benching",
        "bench",
        "Train and time the bundled benchmark: LeNet-5 with batch norm on real handwritten "
        "digits (>= 95% accuracy gate), then a ResNet-18 throughput sweep over batch sizes in "
        "fp32 and mixed precision (images/s, ms/step, peak memory, TFLOP/s, MFU).",
    ),
    "build": CommandInfo(
        "building",
        "build",
        "Build images for entries: envkit build torch1.4-cuda10 [NAME...] | --all [filters].",
    ),
    "check": CommandInfo(
        "entries",
        "check",
        "Validate a matrix file: schema, then rules over the facts (pairings, variants, Pythons).",
    ),
    "ci": CommandInfo(
        "ci",
        "ci",
        "Continuous integration for a project: envkit ci init writes a GitHub Actions workflow.",
    ),
    "clean": CommandInfo(
        "building",
        "clean",
        "Remove every container envkit started that is still around (label io.envkit).",
    ),
    "config": CommandInfo(
        "config",
        "config",
        "Show each build setting's effective value and where it comes from (option, env var, "
        "envkit.yaml, config file or default); `envkit config set NAME VALUE` remembers one.",
    ),
    "dockerfile": CommandInfo(
        "entries", "dockerfile", "Print the rendered Dockerfile for an entry."
    ),
    "doctor": CommandInfo(
        "checking",
        "doctor",
        "Check that this host (and NAME's image) can really use the GPU, with a fix for each "
        "problem: engine, GPU runtime, driver, GPUs, /dev/shm; for NAME also the driver's "
        "CUDA, the build's GPU architectures, and a probe run inside the image (real kernels "
        "on every GPU, DataLoader workers, versions against the matrix).",
    ),
    "init": CommandInfo(
        "project",
        "init",
        "Choose the newest entry that fits the project's torch pins and this host's GPU, and "
        "write it to envkit.yaml.",
    ),
    "inspect": CommandInfo(
        "building",
        "inspect",
        "Show the envkit labels of a built image (an entry name, . for the project in this "
        "folder, or any image reference).",
    ),
    "list": CommandInfo(
        "entries", "list_cmd", "List matrix entries (one row each), optionally filtered."
    ),
    "lock": CommandInfo(
        "building",
        "lock_cmd",
        "Lock the project in this folder (no NAME, or .), or entry NAME's built image.",
    ),
    "matrix": CommandInfo(
        "entries",
        "matrix_cmd",
        'Emit the (filtered) matrix for CI: `{"include": [...]}` for GitHub Actions.',
    ),
    "records": CommandInfo(
        "records",
        "records_cmd",
        "List the validation records that `envkit verify` wrote, newest last; filter by entry, "
        "host kind or date.",
    ),
    "report": CommandInfo(
        "records",
        "report_cmd",
        "Write one self-contained HTML page of the validation records: a grid of entries x "
        "host kinds, each record's details and bench plots, and the regressions.",
    ),
    "run": CommandInfo(
        "running", "run", "Run a command in an entry's image: envkit run NAME -- python train.py"
    ),
    "shell": CommandInfo(
        "running",
        "shell",
        "An interactive bash in an entry's image, the current folder at /workspace.",
    ),
    "show": CommandInfo(
        "entries",
        "show",
        "Everything about one entry: versions, base, index, pins, facts it was checked against.",
    ),
    "verify": CommandInfo(
        "verify",
        "verify",
        "Prove an entry's image on this host and keep the proof: build (or reuse), doctor, "
        "bench and the project's own test, written as one record and compared with the last "
        "good one.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands come from COMMANDS, each imported when it is first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        info = COMMANDS.get(cmd_name)
        if info is None:
            return super().get_command(ctx, cmd_name)
        module = importlib.import_module(f"{__name__}.{info.module}")
        return getattr(module, info.function)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's main, except that Ctrl-C or SIGTERM before a command took over (while the
        command is still being imported and parsed) exits 130 / 143 like one after, instead
        of Click's "Aborted!" and exit 1."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort as abort:
            terminated = isinstance(abort.__cause__, Terminated)
            click.secho("terminated" if terminated else "interrupted", fg="yellow", err=True)
            sys.exit(143 if terminated else 130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Click's own listing, from the table's summaries instead of the imported commands.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            info = COMMANDS.get(name)
            command = (
                click.Command(name, help=info.summary) if info else self.get_command(ctx, name)
            )
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="envkit")
@click.option(
    "--matrix",
    "matrix_path",
    type=click.Path(dir_okay=False),
    envvar="ENVKIT_MATRIX",
    help="Matrix file to use instead of the shipped one (env: ENVKIT_MATRIX).",
)
@click.pass_context
def main(ctx: click.Context, matrix_path: str | None) -> None:
    """Reproducible PyTorch/CUDA environments as Docker images.

    Each entry of the compatibility matrix (`envkit list`) names a torch / torchvision /
    CUDA / cuDNN / Python stack. envkit renders its Dockerfile, builds it with BuildKit,
    checks the GPU inside (`doctor`) and trains a small benchmark in it (`bench`).

    \b
    Typical use:
      envkit list --torch '>=1.4,<1.6'
      envkit build torch1.4-cuda10
      envkit doctor torch1.4-cuda10
      envkit run torch1.4-cuda10 -- python train.py
    """
    ctx.ensure_object(dict)
    ctx.obj["matrix_path"] = matrix_path
    catch_interrupts(ctx)
