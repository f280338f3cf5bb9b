"""The envkit command line: parse options, call one core function, render its result."""

from __future__ import annotations

import functools
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import click

from . import __version__
from .errors import EnvkitError, MatrixError, Terminated
from .table import format_table

EXIT_CODES = """\b
Exit codes:
  0  ok
  1  a check or build failed
  2  bad usage or input (unknown name, unusable matrix file, bad option)
  130/143  interrupted (Ctrl-C) / terminated (SIGTERM); nothing is left running"""


TAG_HELP = "Repository prefix the image was built with (after --registry R: R/envkit)."


def _fail(exc: EnvkitError) -> None:
    if isinstance(exc, MatrixError):
        for problem in exc.problems:
            click.secho(str(problem), fg="red", err=True)
    else:
        click.secho(f"error: {exc.message}", fg="red", err=True)
    if exc.fix:
        click.echo(f"fix: {exc.fix}", err=True)
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


def _interrupted(signum, frame):
    """The first Ctrl-C or SIGTERM starts the cleanup; later ones may not cut it short (a
    cancelled CI job gets SIGINT, then SIGTERM a few seconds later). Cleanup is bounded:
    containers get 5 s to stop, build clients 20 s."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _catch_interrupts(ctx: click.Context) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if before[signal.SIGINT] == signal.SIG_IGN:
        del before[signal.SIGINT]  # started in the background (`cmd &`): leave it ignored
    for sig in before:
        signal.signal(sig, _interrupted)

    def restore():
        for sig, handler in before.items():
            signal.signal(sig, handler)

    ctx.call_on_close(restore)


def _matrix(ctx: click.Context):
    """The command's matrix, read and validated once however many steps ask for it."""
    from . import matrix

    if "matrix" not in ctx.obj:
        ctx.obj["matrix"] = matrix.load(ctx.obj.get("matrix_path"))
    return ctx.obj["matrix"]


def _build_options(ctx: click.Context):
    """BuildOptions from the command's own options (same names), refused early when unusable."""
    import dataclasses

    from . import build as builder

    names = {f.name for f in dataclasses.fields(builder.BuildOptions)}
    options = builder.BuildOptions(**{k: v for k, v in ctx.params.items() if k in names})
    builder.check_options(options)
    return options


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2))


def entry_filters(func):
    """The filters every matrix-reading command shares."""
    options = [
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
        click.option("--flavour", type=click.Choice(["runtime", "devel"]), help="Image flavour."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _select(ctx, torch_spec, cuda, python, flavour, names=()):
    from . import matrix
    from .errors import BadInput

    loaded = _matrix(ctx)
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


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
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
    _catch_interrupts(ctx)


# ----------------------------------------------------------------------------- the matrix


@main.command("list", epilog=EXIT_CODES)
@entry_filters
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of entries.")
@click.pass_context
@handles_errors
def list_cmd(ctx, torch_spec, cuda, python, flavour, as_json):
    """List matrix entries (one row each), optionally filtered."""
    _, entries = _select(ctx, torch_spec, cuda, python, flavour)
    if as_json:
        _emit_json([e.to_dict() for e in entries])
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
    click.echo(f"{len(entries)} entries", err=True)


@main.command(epilog=EXIT_CODES)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@click.pass_context
@handles_errors
def show(ctx, name, as_json):
    """Everything about one entry: versions, base, index, pins, facts it was checked against."""
    from . import facts

    entry = _matrix(ctx).get(name)
    data = entry.to_dict()
    # A CPU-only entry needs none of these. min_driver is the CUDA toolkit's own driver;
    # min_driver_compat the oldest that still runs it (minor-version compatibility, CUDA 11+).
    # libraries_max_capability: the wheel links its CUDA libraries in, and they run on GPUs up
    # to this compute capability only, whatever PTX the arch list has (null: not linked in).
    data["min_driver"], data["min_driver_compat"], data["arch_list"] = None, None, None
    data["libraries_max_capability"] = None
    if entry.cuda:
        data["min_driver"] = facts.min_driver_for(entry.cuda)
        data["min_driver_compat"] = facts.min_driver_compat_for(entry.cuda)
        arch = facts.arch_list(entry.torch, entry.cuda)
        data["arch_list"] = list(arch) if arch else None
        data["libraries_max_capability"] = facts.library_limit(entry.torch, entry.cuda)
    if as_json:
        _emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(value) if value else "-"
        click.echo(f"{key.ljust(width)}  {'-' if value in (None, '') else value}")


@main.command(
    epilog="""\b
Exit codes:
  0  the file is clean (warnings may be printed)
  1  rules failed (impossible pairings, unpublished variants, ...)
  2  the file is unusable (YAML or schema errors)"""
)
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
@click.pass_context
@handles_errors
def check(ctx, file, as_json):
    """Validate a matrix file: schema, then rules over the facts (pairings, variants, Pythons).

    Each problem prints as FILE:LINE: message — fix.
    """
    from . import check as rules
    from . import matrix

    path = file or ctx.obj.get("matrix_path")
    try:
        loaded = matrix.load(path)
    except MatrixError as exc:
        if as_json:
            problems = [{**vars(p), "fix": p.fix or exc.fix} for p in exc.problems]
            _emit_json({"ok": False, "usable": False, "problems": problems})
            sys.exit(2)
        raise
    problems = rules.check(loaded)
    failed = bool(rules.errors(problems))
    if as_json:
        _emit_json(
            {
                "ok": not failed,
                "usable": True,
                "entries": len(loaded.entries),
                "problems": [vars(p) for p in problems],
            }
        )
    else:
        for problem in problems:
            colour = "red" if problem.severity == "error" else "yellow"
            prefix = "" if problem.severity == "error" else "warning: "
            click.secho(f"{prefix}{problem}", fg=colour)
        errors = len(rules.errors(problems))
        click.echo(
            f"{loaded.path}: {len(loaded.entries)} entries, {errors} errors, "
            f"{len(problems) - errors} warnings",
            err=True,
        )
    sys.exit(1 if failed else 0)


@main.command(epilog=EXIT_CODES)
@click.argument("name")
@click.pass_context
@handles_errors
def dockerfile(ctx, name):
    """Print the rendered Dockerfile for an entry."""
    from . import dockerfile as render

    click.echo(render.render(_matrix(ctx).get(name)), nl=False)


@main.command("matrix", epilog=EXIT_CODES)
@entry_filters
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
def matrix_cmd(ctx, torch_spec, cuda, python, flavour, fmt):
    """Emit the (filtered) matrix for CI: `{"include": [...]}` for GitHub Actions."""
    _, entries = _select(ctx, torch_spec, cuda, python, flavour)
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


# ------------------------------------------------------------------------------- building


class _Progress:
    """Live status on a terminal (one line, redrawn), plain lines otherwise."""

    def __init__(self, live: bool):
        self.live = live
        self.state: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ticker = None
        if live:
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()

    def _line(self) -> str:
        now = time.monotonic()
        parts = [
            f"{name} {text} ({now - self.started[name]:.0f}s)" for name, text in self.state.items()
        ]
        width = shutil.get_terminal_size().columns - 1
        return " | ".join(parts)[:width]

    def _tick(self):
        while not self.stop.wait(1.0):
            with self.lock:
                if self.state:
                    click.echo("\r\x1b[K" + self._line(), nl=False, err=True)

    def event(self, name, event):
        if event.kind != "step":
            return
        with self.lock:
            self.started.setdefault(name, time.monotonic())
            self.state[name] = f"step {event.step}/{event.steps}: {event.text[:60]}"
            if self.live:
                click.echo("\r\x1b[K" + self._line(), nl=False, err=True)
            else:
                elapsed = time.monotonic() - self.started[name]
                click.echo(
                    f"[{name}] step {event.step}/{event.steps} ({elapsed:.0f}s): "
                    f"{event.text[:100]}",
                    err=True,
                )

    def done(self, result):
        with self.lock:
            self.state.pop(result.name, None)
            if self.live:
                click.echo("\r\x1b[K", nl=False, err=True)
            _render_build_result(result)

    def close(self):
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
        if self.live:
            click.echo("\r\x1b[K", nl=False, err=True)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def _render_build_result(result) -> None:
    if result.ok:
        what = "up to date" if result.status == "up-to-date" else "built"
        click.secho(
            f"{result.name}: {what} in {result.seconds:.2f}s -> {', '.join(result.tags)}",
            fg="green",
            err=True,
        )
        return
    click.secho(f"{result.name}: {result.error}", fg="red", err=True)
    for line in result.tail:
        click.echo(f"    {line}", err=True)
    if result.fix:
        click.echo(f"fix: {result.fix}", err=True)


def image_options(func):
    """How images are named and cached (shared by build and bake)."""
    options = [
        click.option(
            "--tag",
            "tag_prefix",
            default="envkit",
            show_default=True,
            metavar="PREFIX",
            help="Repository prefix of the image tags.",
        ),
        click.option("--registry", metavar="HOST", help="Registry host to prefix tags with."),
        click.option("--no-cache", is_flag=True, help="Do not use the build cache."),
        click.option("--pull", is_flag=True, help="Always try to pull a newer base image."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_options(func):
    """Options that decide how images are built (shared by build and bench/doctor builds)."""
    options = [
        click.option(
            "--base-image",
            metavar="REF",
            help="Base image instead of the entry's (a mirror or a local image).",
        ),
        click.option("--index-url", metavar="URL", help="Package index for dependencies."),
        click.option("--extra-index-url", metavar="URL", help="Extra package index."),
        click.option(
            "--wheelhouse",
            type=click.Path(file_okay=False, exists=True, path_type=Path),
            help="Folder of wheels to install from (e.g. a downloaded CUDA torch).",
        ),
        click.option(
            "--offline", is_flag=True, help="Install only from --wheelhouse: no index is contacted."
        ),
        click.option(
            "--ca-cert",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="Extra CA certificates (PEM) for pip/apt behind a TLS proxy; passed "
            "as a BuildKit secret, never stored in the image.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command(
    epilog=EXIT_CODES
    + """

\b
Tags: PREFIX/NAME:latest and PREFIX/NAME:<content hash>, where the hash covers the rendered
Dockerfile, build args, base image and wheelhouse; a build whose hash exists returns at once.
Full logs: ~/.cache/envkit/logs (path printed).
Keep containers for debugging: ENVKIT_KEEP_CONTAINERS=1."""
)
@click.argument("names", nargs=-1)
@click.option("--all", "all_entries", is_flag=True, help="Build every (filtered) entry.")
@entry_filters
@click.option(
    "-j",
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Builds to run in parallel.",
)
@image_options
@click.option("--push", is_flag=True, help="Push both tags after building.")
@click.option("--force", is_flag=True, help="Build even when the content tag exists.")
@build_options
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write full build logs.",
)
@click.option(
    "--locked",
    is_flag=True,
    help="Refuse the result unless its packages equal envkit.lock's (names the differences).",
)
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="envkit.lock",
    show_default=True,
    help="Lock file for --locked.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@click.pass_context
@handles_errors
def build(
    ctx,
    names,
    all_entries,
    torch_spec,
    cuda,
    python,
    flavour,
    jobs,
    tag_prefix,
    registry,
    push,
    force,
    no_cache,
    pull,
    base_image,
    index_url,
    extra_index_url,
    wheelhouse,
    offline,
    ca_cert,
    log_dir,
    locked,
    lock_path,
    as_json,
):
    """Build images for entries: envkit build torch1.4-cuda10 [NAME...] | --all [filters]."""
    from . import build as builder
    from .errors import BadInput
    from .project import PROJECT_FILE, load_project

    filtered = any([torch_spec, cuda, python, flavour])
    if names and all_entries:
        raise BadInput(
            "--all builds every entry (the filters narrow it); names build only those",
            "drop --all or the names: envkit build NAME..., or envkit build --all [--torch ...]",
        )
    project = None
    if not names and not all_entries and not filtered:
        project = load_project(Path.cwd())
        if project is None:
            raise BadInput(
                f"name an entry to build, pass --all / a filter, or run in a folder with "
                f"{PROJECT_FILE}",
                "e.g. envkit build torch1.4-cuda10; see envkit list, or envkit init",
            )
        entries = [_matrix(ctx).get(project.entry)]
    else:
        _, entries = _select(ctx, torch_spec, cuda, python, flavour, names)  # never empty
    options = _build_options(ctx)
    _warn_broken_rules(ctx, entries)
    progress = _Progress(live=sys.stderr.isatty() and not as_json)
    try:
        if locked:
            from . import lock

            if len(entries) != 1:
                raise BadInput("--locked builds exactly one entry", "name the locked entry")
            result = lock.build_locked(
                entries[0], options, lock.read_lock(lock_path), progress.event
            )
            progress.done(result)
            results = [result]
        elif project is not None:
            results = builder.build_project(project, entries[0], options, progress.event)
            for result in results:
                progress.done(result)
        else:
            results = builder.build_many(entries, options, jobs, progress.event, progress.done)
    finally:
        progress.close()
    for result in results:
        if result.log_path:
            click.echo(f"{result.name}: log {result.log_path}", err=True)
    if as_json:
        _emit_json([r.to_dict() for r in results])
    sys.exit(0 if all(r.ok for r in results) else 1)


def _warn_broken_rules(ctx, entries) -> None:
    """Say which of `check`'s rules the entries to build break. A warning, not a refusal: the
    fact tables can lag a new torch release, and the build itself has the last word."""
    from . import check as rules

    path = str(_matrix(ctx).path)
    for entry in entries:
        for problem in rules.errors(rules.entry_problems(entry, path)):
            click.secho(
                f"warning: {entry.name} breaks a matrix rule: {problem}", fg="yellow", err=True
            )


@main.command(epilog=EXIT_CODES)
@click.argument("ref")
@click.option(
    "--tag", "tag_prefix", default="envkit", show_default=True, metavar="PREFIX", help=TAG_HELP
)
@click.option("--json", "as_json", is_flag=True, help="Print labels as JSON.")
@click.pass_context
@handles_errors
def inspect(ctx, ref, tag_prefix, as_json):
    """Show the envkit labels of a built image (an entry name, . for the project in this
    folder, or any image reference)."""
    from . import engine
    from .errors import BadInput

    if ref == ".":
        image, _ = _image_for(ctx, ref, tag_prefix)
    else:
        image = ref if ":" in ref or "/" in ref else f"{tag_prefix}/{_matrix(ctx).get(ref).name}"
    if ":" not in image.rsplit("/", 1)[-1]:
        image += ":latest"
    engine.require_built(image, ref if image.startswith(f"{tag_prefix}/{ref}:") else "NAME")
    labels = engine.image_labels(image) or {}
    ours = {
        k: v
        for k, v in sorted(labels.items())
        if k.startswith(("io.envkit.", "org.opencontainers."))
    }
    if not any(k.startswith("io.envkit.") for k in ours):
        raise BadInput(
            f"{image} is not an image envkit built (it has no io.envkit labels)",
            "name an entry (envkit list) or an image made by envkit build",
        )
    if as_json:
        _emit_json({"image": image, "labels": ours})
        return
    click.echo(format_table(["LABEL", "VALUE"], [[k, v] for k, v in ours.items()]))


@main.command(epilog=EXIT_CODES)
@handles_errors
def clean():
    """Remove every container envkit started that is still around (label io.envkit)."""
    from . import engine

    removed = engine.remove_leftovers()
    click.echo(
        f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else "")
    )


# ------------------------------------------------------------------------------- running


def run_options(func):
    """Options shared by run and shell."""
    options = [
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
        click.option("--ipc-host", is_flag=True, help="Share the host's IPC namespace instead."),
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
        click.option(
            "--tag",
            "tag_prefix",
            default="envkit",
            show_default=True,
            metavar="PREFIX",
            help=TAG_HELP,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _image_for(ctx, name: str, tag_prefix: str) -> tuple[str, str]:
    """The image for NAME, or for the project in this folder when NAME is '.'."""
    if name == ".":
        from . import build as builder
        from .errors import BadInput
        from .project import PROJECT_FILE, load_project

        project = load_project(Path.cwd())
        if project is None:
            raise BadInput(
                f"no {PROJECT_FILE} in {Path.cwd()}",
                "write one with `envkit init`, or name a matrix entry",
            )
        options = builder.BuildOptions(tag_prefix=tag_prefix)
        return builder.current_project_image(project, options), project.entry
    entry = _matrix(ctx).get(name)
    return f"{tag_prefix}/{entry.name}:latest", entry.name


def _run(ctx, name, command, gpus, shm_size, ipc_host, env, user, tag_prefix, interactive, tty):
    from . import engine
    from . import run as runner

    image, entry = _image_for(ctx, name, tag_prefix)
    spec, note = runner.spec_for(
        image,
        entry,
        tuple(command),
        workdir=Path.cwd(),
        gpus=gpus,
        user=user,
        shm_size=shm_size,
        ipc_host=ipc_host,
        env=env,
        interactive=interactive,
        tty=tty,
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


@main.command(
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
def run(ctx, name, command, attach_stdin, gpus, shm_size, ipc_host, env, user, tag_prefix):
    """Run a command in an entry's image: envkit run NAME -- python train.py

    NAME '.' means the project image built from ./envkit.yaml (`envkit build` in that folder).
    """
    _run(
        ctx,
        name,
        command,
        gpus,
        shm_size,
        ipc_host,
        env,
        user,
        tag_prefix,
        interactive=attach_stdin or sys.stdin.isatty(),
        tty=sys.stdin.isatty() and sys.stdout.isatty(),
    )


@main.command(epilog=EXIT_CODES)
@click.argument("name")
@run_options
@click.pass_context
@handles_errors
def shell(ctx, name, gpus, shm_size, ipc_host, env, user, tag_prefix):
    """An interactive bash in an entry's image, the current folder at /workspace."""
    _run(
        ctx,
        name,
        ("bash",),
        gpus,
        shm_size,
        ipc_host,
        env,
        user,
        tag_prefix,
        interactive=True,
        tty=sys.stdin.isatty(),
    )


# -------------------------------------------------------------------------------- checking


@main.command(
    epilog="""\b
Exit codes:
  0  nothing failed (warnings allowed)
  1  at least one check failed
  2  bad usage or input"""
)
@click.argument("name", required=False)
@click.option(
    "--host",
    "host_probe",
    is_flag=True,
    help="Run the probe on this machine's own Python instead of in a container "
    "(for machines without Docker).",
)
@click.option(
    "--tag",
    "tag_prefix",
    default="envkit",
    show_default=True,
    metavar="PREFIX",
    help=TAG_HELP,
)
@click.option(
    "--static",
    "static_only",
    is_flag=True,
    help="Only the checks that run nothing: this host's driver and GPUs against NAME's CUDA "
    "and GPU architectures.",
)
@click.option(
    "--allow-cpu",
    is_flag=True,
    help="A CPU-only result is acceptable: report missing GPUs as warnings.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: ok, checks[{id, status, detail, fix}], ...",
)
@click.pass_context
@handles_errors
def doctor(ctx, name, host_probe, tag_prefix, static_only, allow_cpu, as_json):
    """Check that this host (and NAME's image) can really use the GPU, with a fix for each
    problem: engine, GPU runtime, driver, GPUs, /dev/shm; for NAME also the driver's CUDA,
    the build's GPU architectures, and a probe run inside the image (real kernels on every
    GPU, DataLoader workers, versions against the matrix)."""
    from . import doctor as doc
    from .errors import BadInput

    if host_probe and static_only:
        raise BadInput(
            "--host runs the probe and --static runs nothing: pick one",
            "--static predicts from nvidia-smi alone; --host also runs torch on this machine",
        )
    loaded = _matrix(ctx) if name or not host_probe else None
    entry = loaded.get(name) if name else None
    report = doc.run_doctor(
        entry,
        host_probe=host_probe,
        all_entries=loaded.entries if loaded else (),
        image=f"{tag_prefix}/{entry.name}:latest" if entry else None,
        allow_cpu=allow_cpu,
        static_only=static_only,
    )
    click.echo(report.to_json() if as_json else report.to_text())
    sys.exit(0 if report.ok else 1)


@main.command("lock", epilog=EXIT_CODES)
@click.argument("name")
@build_options
@click.option(
    "--tag", "tag_prefix", default="envkit", show_default=True, metavar="PREFIX", help=TAG_HELP
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="envkit.lock",
    show_default=True,
    help="Where to write the lock.",
)
@click.pass_context
@handles_errors
def lock_cmd(
    ctx,
    name,
    base_image,
    index_url,
    extra_index_url,
    wheelhouse,
    offline,
    ca_cert,
    tag_prefix,
    out_path,
):
    """Write envkit.lock for NAME's built image: base image digest, image id, and the exact
    Python packages inside. Pass the same build options you built with."""
    from . import lock

    entry = _matrix(ctx).get(name)
    options = _build_options(ctx)
    lock.check_out_path(out_path)
    made = lock.make_lock(entry, options)
    lock.write_lock(made, out_path)
    click.echo(
        f"{out_path}: {entry.name}, {len(made.packages)} packages, image {made.image_id[:19]}"
    )


# ------------------------------------------------------------------ projects and CI matrices


@main.command(epilog=EXIT_CODES)
@click.argument(
    "folder", default=".", type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--cuda",
    metavar="VER",
    help="Choose a CUDA entry ('11.8', '11', 'cu118') or 'cpu', whatever the host has.",
)
@click.option("--force", is_flag=True, help="Replace an existing envkit.yaml.")
@click.option("--dry-run", is_flag=True, help="Explain the choice; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the choice as JSON.")
@click.pass_context
@handles_errors
def init(ctx, folder, cuda, force, dry_run, as_json):
    """Choose the newest entry that fits the project's torch pins and this host's GPU, and
    write it to envkit.yaml.

    Pins are read from requirements*.txt, pyproject.toml, setup.py (never run), setup.cfg and
    environment.yml; the GPU and driver from nvidia-smi.
    """
    from . import init as chooser

    choice = chooser.init_project(folder, _matrix(ctx), chooser.detect_host(), cuda=cuda)
    path = None if dry_run else chooser.write_choice(folder, choice, force=force)
    if as_json:
        _emit_json({**choice.to_dict(), "written": str(path) if path else None})
        return
    for line in choice.explanation:
        click.echo(line, err=True)
    if path:
        click.secho(f"wrote {path}: entry {choice.entry.name}", fg="green", err=True)
    click.echo(choice.entry.name)


@main.command(
    epilog=EXIT_CODES
    + """

\b
Then: docker buildx bake -f FILE [TARGET...]   (targets are entry names with '.' as '_')"""
)
@click.argument("names", nargs=-1)
@entry_filters
@click.option(
    "-o",
    "--output",
    "output",
    default="docker-bake.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bake file to write.",
)
@image_options
@build_options
@click.option("--json", "as_json", is_flag=True, help="Print the file and its targets as JSON.")
@click.pass_context
@handles_errors
def bake(
    ctx,
    names,
    torch_spec,
    cuda,
    python,
    flavour,
    output,
    tag_prefix,
    registry,
    no_cache,
    pull,
    base_image,
    index_url,
    extra_index_url,
    wheelhouse,
    offline,
    ca_cert,
    as_json,
):
    """Write a docker-bake.json that builds the (filtered) matrix with `docker buildx bake`."""
    from . import bake as baker

    _, entries = _select(ctx, torch_spec, cuda, python, flavour, names)
    options = _build_options(ctx)
    path = baker.write_bake(entries, options, output)
    targets = [baker.target_name(e) for e in entries]
    if as_json:
        _emit_json({"file": str(path), "targets": targets})
        return
    click.echo(f"wrote {path}: {len(targets)} targets", err=True)
    click.echo(f"docker buildx bake -f {path}")


# ------------------------------------------------------------------------------ benchmark


@main.command(
    epilog="""\b
Exit codes: 0 the report's status is ok; 1 it is failed, no_gpu or unsupported_arch, or the
benchmark printed no report or ran past its time limit (1 hour); 2 bad usage, or a report
given to compare that is missing or malformed.

\b
  envkit bench NAME [--quick]        in NAME's built image (GPUs attached when available)
  envkit bench --host [--quick]      with this machine's Python and torch
  envkit bench compare A.json B.json side by side, with ratios B/A""",
    context_settings={"ignore_unknown_options": False},
)
@click.argument("args", nargs=-1)
@click.option("--host", "on_host", is_flag=True, help="Run on this host's Python and torch.")
@click.option("--quick", is_flag=True, help="A CI-sized run (under 2 minutes on 2 CPU cores).")
@click.option(
    "--out",
    "out_dir",
    default="envkit-bench",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the JSON report and the PNG plots (plots need matplotlib).",
)
@click.option("--gpus", default="auto", show_default=True, help="GPUs to attach (as for run).")
@click.option(
    "--tag", "tag_prefix", default="envkit", show_default=True, metavar="PREFIX", help=TAG_HELP
)
@click.option("--json", "as_json", is_flag=True, help="Print the report (or comparison) as JSON.")
@click.pass_context
@handles_errors
def bench(ctx, args, on_host, quick, out_dir, gpus, tag_prefix, as_json):
    """Train and time the bundled benchmark: LeNet-5 with batch norm on real handwritten digits
    (>= 95% accuracy gate), then a ResNet-18 throughput sweep over batch sizes in fp32 and
    mixed precision (images/s, ms/step, peak memory, TFLOP/s, MFU)."""
    from . import bench_run, report
    from .errors import BadInput

    if args and args[0] == "compare":
        if len(args) != 3:
            raise BadInput("compare takes two reports", "envkit bench compare A.json B.json")
        a, b = report.load_bench(args[1]), report.load_bench(args[2])
        rows = report.compare_bench(a, b)
        if as_json:
            _emit_json(rows)
        else:
            click.echo(report.render_compare(rows, Path(args[1]).name, Path(args[2]).name))
        return
    if on_host == bool(args) or len(args) > 1:
        raise BadInput("name one entry, or pass --host", "envkit bench NAME | envkit bench --host")
    if on_host:
        click.echo("running the benchmark on this host ...", err=True)
        doc = bench_run.on_host(out_dir, quick=quick, on_progress=_echo_err)
        name = "host"
    else:
        from . import run as runner

        image, name = _image_for(ctx, args[0], tag_prefix)
        from . import engine

        engine.require_built(image, name)
        requested, note = runner.resolve_gpus(gpus)
        if note:
            click.secho(f"note: {note}", fg="yellow", err=True)
        # GPUs given to a CUDA build must be used: no silent fallback to the CPU.
        device = "cuda" if requested and _matrix(ctx).get(name).cuda else "auto"
        click.echo(f"running the benchmark in {image} (--device {device}) ...", err=True)
        doc = bench_run.in_image(
            image,
            name,
            out_dir,
            quick=quick,
            gpus=requested,
            device=device,
            on_progress=_echo_err,
        )
    click.echo(f"report: {out_dir / f'bench-{name}.json'}", err=True)
    try:
        for path in report.plot_bench(doc, out_dir, prefix=f"bench-{name}-"):
            click.echo(f"plot: {path}", err=True)
    except report.PlottingUnavailable as exc:
        click.echo(f"note: no plots ({exc.fix})", err=True)
    if as_json:
        _emit_json(doc)
    else:
        click.echo(report.render_bench(doc))
    sys.exit(bench_run.exit_code(doc))
