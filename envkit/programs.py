"""Run a bundled program (envkit/inside/: the probe, the bench) on this host or in an image.

One way for both places: the program and its data files are handed over as host paths, and
`Place` says where the program will see them (beside it in /opt/envkit inside a container, where
they are on the host). The result is the program's exit code and output, whatever it printed.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import engine
from .engine import ProgramResult
from .errors import BadInput, ProgramTimedOut

Progress = Callable[[str], None]  # gets each line the program writes to stderr, as it runs

FILES_IN_IMAGE = "/opt/envkit"
OUT_IN_IMAGE = "/out"


@dataclass(frozen=True)
class Place:
    """Where a program runs: in a throw-away container of `image`, or (image None) with this
    host's `python` (default: the interpreter running envkit)."""

    image: str | None = None
    python: str | None = None
    gpus: str | None = None
    shm_size: str | None = None
    entry: str = "adhoc"

    @property
    def on_host(self) -> bool:
        return self.image is None

    def describe(self) -> str:
        """'in IMAGE' or 'on this host', for messages."""
        return "on this host" if self.on_host else f"in {self.image}"

    def file(self, path: Path) -> str:
        """The path under which the program sees a bundled file."""
        return str(path) if self.on_host else f"{FILES_IN_IMAGE}/{Path(path).name}"

    def out(self, out_dir: Path, name: str) -> str:
        """The path under which the program writes `name` into `out_dir`."""
        return str(Path(out_dir) / name) if self.on_host else f"{OUT_IN_IMAGE}/{name}"


def run(
    place: Place,
    program: Path,
    args: Sequence[str] = (),
    *,
    timeout: float,
    extra_files: Sequence[Path] = (),
    out_dir: Path | None = None,
    on_stderr: Progress | None = None,
    engine=engine,
) -> ProgramResult:
    """Run `python PROGRAM ARGS` where `place` says and collect its exit code and output.

    `engine` is envkit.engine, or anything with its run_program (a stand-in in tests).

    Raises ProgramTimedOut past `timeout`; BadInput when the host Python cannot start; in an
    image, whatever the engine raises (ContainerStartFailed, EngineUnavailable, ...). Nothing
    it started is left running, on Ctrl-C either.
    """
    if place.on_host:
        return _run_on_host(place.python or sys.executable, program, args, timeout, on_stderr)
    return engine.run_program(
        place.image,
        Path(program),
        list(args),
        gpus=place.gpus,
        shm_size=place.shm_size,
        timeout=timeout,
        entry=place.entry,
        extra_files=[Path(f) for f in extra_files],
        out_dir=out_dir,
        on_stderr=on_stderr,
    )


def _run_on_host(
    python: str, program: Path, args: Sequence[str], timeout: float, on_stderr: Progress | None
) -> ProgramResult:
    try:
        # A session of its own: a terminal's Ctrl-C reaches envkit alone, which then stops the
        # program with SIGTERM (no KeyboardInterrupt traceback from it in the progress lines).
        proc = subprocess.Popen(
            [python, str(program), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise BadInput(f"{python} cannot run: {exc}", "pass a working Python interpreter") from None
    stdout: list[str] = []
    stderr: list[str] = []

    def follow():
        show = on_stderr
        for line in proc.stderr:  # always drained, or the program would block on a full pipe
            stderr.append(line)
            if show:
                try:
                    show(line.rstrip("\n"))
                except Exception:  # e.g. our own stderr closed: stop showing, keep draining
                    show = None

    readers = [
        threading.Thread(target=follow, daemon=True),
        threading.Thread(target=lambda: stdout.append(proc.stdout.read()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ProgramTimedOut(
            f"{Path(program).name} did not finish within {timeout:.0f}s on this host",
            "raise the time limit, or run it on a faster machine",
        ) from None
    finally:
        if proc.poll() is None:  # interrupted: take the program down with us
            _stop(proc)
        for reader in readers:
            reader.join(timeout=10)
    return ProgramResult(proc.returncode, "".join(stdout), "".join(stderr))


def _stop(proc: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM (a Python program ends quietly on it), then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
