"""What the commands share: their options and help texts, the matrix a command reads once, and
how failures and signals reach the user."""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from pathlib import Path

import click

from ..errors import BadInput, EnvkitError, MatrixError, Terminated

EXIT_CODES = """\b
Exit codes:
  0  ok
  1  a check or build failed
  2  bad usage or input (unknown name, unusable matrix file, bad option)
  130/143  interrupted (Ctrl-C) / terminated (SIGTERM); nothing is left running"""


TAG_HELP = (
    "Repository prefix the image was built with (after --registry R: R/envkit) "
    "[default: the settings' [registry/]tag_prefix, else envkit]."
)


# ------------------------------------------------------------------- failures and signals


def _fail(exc: EnvkitError) -> None:
    from ..credentials import redact  # a matrix's index_url may be quoted

    if isinstance(exc, MatrixError):
        for problem in exc.problems:
            click.secho(redact(str(problem)), fg="red", err=True)
    else:
        click.secho(redact(f"error: {exc.message}"), fg="red", err=True)
    if exc.fix:
        click.echo(redact(f"fix: {exc.fix}"), err=True)
    sys.exit(exc.exit_code)


def handles_errors(func):
    """Turn foreseen failures into a red line, the fix, and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EnvkitError as exc:
            _fail(exc)
        except Terminated:
            click.secho("terminated", fg="yellow", err=True)
            sys.exit(143)
        except KeyboardInterrupt:
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(130)

    return wrapper


def interrupted(signum, frame):
    """The first Ctrl-C or SIGTERM starts the cleanup; later ones may not cut it short (a
    cancelled CI job gets SIGINT, then SIGTERM a few seconds later). Cleanup is bounded:
    containers get 5 s to stop, build clients 20 s."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def catch_interrupts(ctx: click.Context) -> None:
    """Raise on Ctrl-C and SIGTERM while the command runs; the handlers before come back after."""
    if threading.current_thread() is not threading.main_thread():
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if before[signal.SIGINT] == signal.SIG_IGN:
        del before[signal.SIGINT]  # started in the background (`cmd &`): leave it ignored
    for sig in before:
        signal.signal(sig, interrupted)

    def restore():
        for sig, handler in before.items():
            signal.signal(sig, handler)

    ctx.call_on_close(restore)


# ------------------------------------------------------------------- the matrix and images


def loaded_matrix(ctx: click.Context):
    """The command's matrix, read and validated once however many steps ask for it."""
    from .. import matrix

    if "matrix" not in ctx.obj:
        ctx.obj["matrix"] = matrix.load(ctx.obj.get("matrix_path"))
    return ctx.obj["matrix"]


def select_entries(ctx: click.Context, torch_spec, cuda, python, flavour, names=()):
    """The matrix and its entries that the names and filters pick; none picked is bad input."""
    from .. import matrix

    loaded = loaded_matrix(ctx)
    chosen = tuple(loaded.get(n).name for n in names)
    selected = matrix.select(
        loaded.entries, torch=torch_spec, cuda=cuda, python=python, flavour=flavour, names=chosen
    )
    if not selected:
        given = [
            f"{option} {value}"
            for option, value in (
                ("--torch", torch_spec),
                ("--cuda", cuda),
                ("--python", python),
                ("--flavour", flavour),
            )
            if value
        ]
        raise BadInput(
            f"no entry matches {' '.join(given) or 'the names given'}",
            "see `envkit list` for the entries there are, and loosen a filter",
        )
    return loaded, selected


def image_for(ctx: click.Context, name: str, tag_prefix: str) -> tuple[str, str]:
    """The image for NAME and its entry's name; NAME '.' is the project in this folder."""
    if name == ".":
        from .. import build

        return build.project_image(Path.cwd(), tag_prefix)
    entry = loaded_matrix(ctx).get(name)
    return f"{tag_prefix}/{entry.name}:latest", entry.name


# ------------------------------------------------------------------------------ settings


def effective_settings(ctx: click.Context, given: dict | None = None):
    """The settings in force: the options given on this command line, env vars, this
    folder's envkit.yaml, the user's config file, defaults (envkit.settings)."""
    from .. import settings
    from ..project import load_project

    root = ctx.find_root()
    root.ensure_object(dict)
    if "project_settings" not in root.obj:
        project = load_project(Path.cwd())
        root.obj["project_settings"] = (
            (project.settings, Path(project.path)) if project and project.settings else None
        )
    given = {
        name: value
        for name, value in (given or {}).items()
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    return settings.gather(given, root.obj["project_settings"])


def resolved_build_options(ctx: click.Context, given: dict):
    """BuildOptions from the command's options, the settings filling what was not given, refused
    early when unusable. A command without --registry gets the registry in its --tag."""
    import dataclasses

    from .. import build

    found = effective_settings(ctx, given)
    problems = found.missing_paths()
    if problems:
        raise BadInput(problems[0], "fix the path, or unset it (envkit config shows where)")
    values = dict(given)
    for name in ("base_image", "index_url", "extra_index_url", "wheelhouse", "ca_cert"):
        if values.get(name) is None and found.get(name) is not None:
            values[name] = found.get(name)
    if "registry" in values:
        values["tag_prefix"] = values.get("tag_prefix") or found.get("tag_prefix")
        values["registry"] = values.get("registry") or found.get("registry")
    else:
        values["tag_prefix"] = values.get("tag_prefix") or found.image_prefix()
    if ctx.get_parameter_source("base_image") != click.core.ParameterSource.COMMANDLINE:
        values["base_images"] = tuple(sorted(found.base_images().items()))
    names = {f.name for f in dataclasses.fields(build.BuildOptions)}
    options = build.BuildOptions(**{k: v for k, v in values.items() if k in names})
    build.check_options(options)
    return options


def _image_prefix(ctx: click.Context, param, value):
    """--tag of a command that uses a built image: given (refused as build refuses it), else
    the settings' prefix."""
    if value is not None:
        return _checked_tag(ctx, param, value)
    try:
        return effective_settings(ctx).image_prefix()
    except EnvkitError as exc:
        _fail(exc)


# ------------------------------------------------------------------------------- output


def emit_json(data) -> None:
    """Print data as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2))


def echo_err(line: str) -> None:
    """Print a progress line on stderr."""
    click.echo(line, err=True)


# ------------------------------------------------------------------------------ options


def _apply(options, func):
    for option in reversed(options):
        func = option(func)
    return func


def entry_filters(func):
    """The filters every matrix-reading command shares."""
    return _apply(
        [
            click.option(
                "--torch",
                "torch_spec",
                metavar="SPEC",
                multiple=True,
                callback=lambda ctx, param, value: ",".join(value) if value else None,
                help="torch versions, e.g. '>=1.4,<1.6' or '1.4' (repeat to narrow further).",
            ),
            click.option(
                "--cuda", metavar="VER", help="CUDA: '10' (any 10.x), '10.1', 'cu101' or 'cpu'."
            ),
            click.option("--python", metavar="X.Y", help="Python version, e.g. 3.8."),
            click.option(
                "--flavour", type=click.Choice(["runtime", "devel"]), help="Image flavour."
            ),
        ],
        func,
    )


def _checked_tag(ctx, param, value: str) -> str:
    """--tag PREFIX refused as build refuses it (exit 2), before the command runs."""
    from ..build import check_tag_prefix

    try:
        check_tag_prefix(value)
    except BadInput as exc:
        _fail(exc)
    return value


def tag_option(func):
    """--tag PREFIX for a command that uses an image already built."""
    return click.option(
        "--tag", "tag_prefix", metavar="PREFIX", callback=_image_prefix, help=TAG_HELP
    )(func)


def image_options(func):
    """How images are named and cached (shared by build and bake)."""
    return _apply(
        [
            click.option(
                "--tag",
                "tag_prefix",
                metavar="PREFIX",
                help="Repository prefix of the image tags [default: setting tag_prefix, else "
                "envkit].",
            ),
            click.option(
                "--registry",
                metavar="HOST",
                help="Registry host to prefix tags with [default: setting registry].",
            ),
            click.option(
                "--no-cache",
                is_flag=True,
                help="Build every step anew, without the layer cache (envkit build: even when "
                "the content tag exists, as with --force).",
            ),
            click.option("--pull", is_flag=True, help="Always try to pull a newer base image."),
        ],
        func,
    )


def build_options(func):
    """Options that decide how images are built (shared by build, bake and lock)."""
    return _apply(
        [
            click.option(
                "--base-image",
                metavar="REF",
                help="Base image instead of the entry's (a mirror or a local image) "
                "[default: settings base_images / base_image; envkit config shows them].",
            ),
            click.option("--index-url", metavar="URL", help="Package index for dependencies."),
            click.option("--extra-index-url", metavar="URL", help="Extra package index."),
            click.option(
                "--wheelhouse",
                type=click.Path(file_okay=False, exists=True, path_type=Path),
                help="Folder of wheels to install from (e.g. a downloaded CUDA torch).",
            ),
            click.option(
                "--offline",
                is_flag=True,
                help="Install only from --wheelhouse: no index is contacted.",
            ),
            click.option(
                "--ca-cert",
                type=click.Path(dir_okay=False, exists=True, path_type=Path),
                help="Extra CA certificates (PEM) for pip/apt behind a TLS proxy; passed "
                "as a BuildKit secret, never stored in the image.",
            ),
        ],
        func,
    )


def run_options(func):
    """Options shared by run and shell."""
    return _apply(
        [
            click.option(
                "--gpus",
                default="auto",
                show_default=True,
                help="GPUs to attach: auto (all, when the engine has a GPU runtime), all, "
                "none, or indices like 0,1.",
            ),
            click.option(
                "--shm-size",
                default="8g",
                show_default=True,
                help="Shared memory for DataLoader workers (Docker's default 64m is too small).",
            ),
            click.option(
                "--ipc-host", is_flag=True, help="Share the host's IPC namespace instead."
            ),
            click.option(
                "-e",
                "--env",
                "env",
                multiple=True,
                metavar="NAME[=VALUE]",
                help="Environment variable to pass (repeatable).",
            ),
            click.option(
                "--user",
                metavar="UID[:GID]",
                help="User inside the container (default: yours, or root on a rootless engine, "
                "where that is you: either way files in the mount stay yours).",
            ),
            tag_option,
        ],
        func,
    )
