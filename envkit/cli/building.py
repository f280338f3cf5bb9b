"""Building images and what comes with them: envkit build, bake, lock, inspect, clean."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import click

from .. import bake as baker
from .. import build as builder
from .. import check as rules
from .. import credentials, engine, lock
from ..errors import BadInput
from ..project import PROJECT_FILE, load_project
from ..table import format_table
from .options import (
    EXIT_CODES,
    build_options,
    emit_json,
    entry_filters,
    handles_errors,
    image_for,
    image_options,
    loaded_matrix,
    resolved_build_options,
    select_entries,
    tag_option,
)


class BuildProgress:
    """Live status on a terminal (one line, redrawn), plain lines otherwise."""

    def __init__(self, live: bool):
        self.live = live
        self.state: dict[str, str] = {}
        self.steps: dict[str, str] = {}  # the step each entry is in, for its phases
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
        """Show a build step of entry `name`, and the phases of a long step (a large download,
        the install, the export); log lines go to the build log only."""
        if event.kind not in ("step", "phase"):
            return
        with self.lock:
            self.started.setdefault(name, time.monotonic())
            if event.kind == "step":
                self.steps[name] = f"step {event.step}/{event.steps}"
            step, text = self.steps.get(name, "step"), event.text  # a phase: of the last step
            self.state[name] = f"{step}: {text[:60]}"
            if self.live:
                click.echo("\r\x1b[K" + self._line(), nl=False, err=True)
            else:
                elapsed = time.monotonic() - self.started[name]
                click.echo(f"[{name}] {step} ({elapsed:.0f}s): {text[:100]}", err=True)

    def done(self, result):
        """Replace an entry's status with its result."""
        with self.lock:
            self.state.pop(result.name, None)
            if self.live:
                click.echo("\r\x1b[K", nl=False, err=True)
            render_build_result(result)

    def close(self):
        """Stop redrawing and clear the status line."""
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
        if self.live:
            click.echo("\r\x1b[K", nl=False, err=True)


def render_build_result(result) -> None:
    """One build's outcome on stderr: tags when it worked, else the error, log tail and fix."""
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


def _warn_broken_rules(ctx: click.Context, entries) -> None:
    """Say which of `check`'s rules the entries to build break. A warning, not a refusal: the
    fact tables can lag a new torch release, and the build itself has the last word."""
    path = str(loaded_matrix(ctx).path)
    for entry in entries:
        for problem in rules.errors(rules.entry_problems(entry, path)):
            click.secho(
                f"warning: {entry.name} breaks a matrix rule: {credentials.redact(str(problem))}",
                fg="yellow",
                err=True,
            )


@click.command(
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
    help="Lock file for --locked [default: envkit.lock.txt in a project folder, else envkit.lock].",
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
    locked,
    lock_path,
    as_json,
    **build_settings,
):
    """Build images for entries: envkit build torch1.4-cuda10 [NAME...] | --all [filters].

    \b
    With no name, in a folder with envkit.yaml: the entry's image, then the project image on it
    (the project's packages; with `as_of:` exactly those the index offered that day, resolved
    on the host). --locked builds both from envkit.lock.txt instead and refuses any drift.
    Unchanged inputs reuse the image (content tag). Exit 0: all built or up to date; 1: a build
    failed, drift, or no engine; 2: bad input; 130: interrupted (nothing left running).
    """
    filtered = any([torch_spec, cuda, python, flavour])
    project = builder.requested_project(names, all_entries, filtered, Path.cwd())
    if project is not None:
        entries = [loaded_matrix(ctx).get(project.entry)]
    else:
        _, entries = select_entries(ctx, torch_spec, cuda, python, flavour, names)  # not empty
    options = resolved_build_options(ctx, build_settings)
    if locked and lock_path is None:
        lock_path = Path(lock.PROJECT_LOCK_FILE if project is not None else lock.LOCK_FILE)
    _warn_broken_rules(ctx, entries)
    progress = BuildProgress(live=sys.stderr.isatty() and not as_json)
    try:
        results = builder.build_requested(
            entries,
            options,
            project=project,
            lock_path=lock_path if locked else None,
            jobs=jobs,
            on_event=progress.event,
            on_result=progress.done,
        )
    finally:
        progress.close()
    for result in results:
        if result.log_path:
            click.echo(f"{result.name}: log {result.log_path}", err=True)
    if as_json:
        emit_json([r.to_dict() for r in results])
    sys.exit(0 if all(r.ok for r in results) else 1)


@click.command(
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
def bake(ctx, names, torch_spec, cuda, python, flavour, output, as_json, **build_settings):
    """Write a docker-bake.json that builds the (filtered) matrix with `docker buildx bake`."""
    _, entries = select_entries(ctx, torch_spec, cuda, python, flavour, names)
    options = resolved_build_options(ctx, build_settings)
    path = baker.write_bake(entries, options, output)
    targets = [baker.target_name(e) for e in entries]
    if as_json:
        emit_json({"file": str(path), "targets": targets})
        return
    click.echo(f"wrote {path}: {len(targets)} targets", err=True)
    click.echo(f"docker buildx bake -f {path}")


@click.command("lock", epilog=EXIT_CODES)
@click.argument("name", required=False)
@build_options
@tag_option
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the lock [default: envkit.lock.txt for the project, envkit.lock for "
    "an entry].",
)
@click.pass_context
@handles_errors
def lock_cmd(ctx, name, out_path, **build_settings):
    """Lock the project in this folder (no NAME, or .), or entry NAME's built image.

    The project: envkit.yaml's requirements resolved over the entry image's packages, as of
    its as_of date, every file's sha256 with them, into envkit.lock.txt (pip's
    --require-hashes format). NAME: envkit.lock with the base image digest, image id, and the
    exact Python packages inside. Pass the same build options you built with (the settings give
    them when you built with the settings)."""
    options = resolved_build_options(ctx, build_settings)
    if name in (None, "."):
        project = load_project(Path.cwd())
        if project is None:
            raise BadInput(
                f"no {PROJECT_FILE} in {Path.cwd()} to lock",
                "name an entry (envkit lock NAME), or write one with `envkit init`",
            )
        entry = loaded_matrix(ctx).get(project.entry)
        options = builder.options_for(entry, options)
        out_path = out_path or project.directory / lock.PROJECT_LOCK_FILE
        lock.check_out_path(out_path)
        made = lock.make_project_lock(project, entry, options)
        lock.write_lock(made, out_path)
        as_of = f", as of {made.as_of}" if made.as_of else ""
        click.echo(f"{out_path}: {entry.name} + project, {len(made.packages)} packages{as_of}")
        return
    entry = loaded_matrix(ctx).get(name)
    options = builder.options_for(entry, options)
    out_path = out_path or Path(lock.LOCK_FILE)
    lock.check_out_path(out_path)
    made = lock.make_lock(entry, options)
    lock.write_lock(made, out_path)
    click.echo(
        f"{out_path}: {entry.name}, {len(made.packages)} packages, image {made.image_id[:19]}"
    )


@click.command(epilog=EXIT_CODES)
@click.argument("ref")
@tag_option
@click.option("--json", "as_json", is_flag=True, help="Print labels as JSON.")
@click.pass_context
@handles_errors
def inspect(ctx, ref, tag_prefix, as_json):
    """Show the envkit labels of a built image (an entry name, . for the project in this
    folder, or any image reference)."""
    if ref == ".":
        image, _ = image_for(ctx, ref, tag_prefix)
    else:
        image = (
            ref if ":" in ref or "/" in ref else f"{tag_prefix}/{loaded_matrix(ctx).get(ref).name}"
        )
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
        emit_json({"image": image, "labels": ours})
        return
    click.echo(format_table(["LABEL", "VALUE"], [[k, v] for k, v in ours.items()]))


@click.command(epilog=EXIT_CODES)
@click.option(
    "--images",
    is_flag=True,
    help="Also remove envkit's dangling images (untagged, label io.envkit.entry: what a rebuild "
    "replaced while a container used it), except those a container still uses.",
)
@handles_errors
def clean(images):
    """Remove every container envkit started that is still around (label io.envkit)."""
    removed = engine.remove_leftovers()
    click.echo(
        f"removed {len(removed)} container(s)" + (f": {', '.join(removed)}" if removed else "")
    )
    if images:
        gone, kept = engine.remove_dangling_images()
        short = [image.split(":")[-1][:12] for image in gone]
        click.echo(
            f"removed {len(gone)} dangling image(s)" + (f": {', '.join(short)}" if short else "")
        )
        if kept:
            click.echo(f"{len(kept)} kept: in use by a container or another image", err=True)
