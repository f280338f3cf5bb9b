"""Run the bundled benchmark (envkit/bench.py) in an entry's image or on this host."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import bench, engine
from .errors import BadInput, CheckFailed, ProgramTimedOut, make_folder

Progress = Callable[[str], None]  # gets each progress line bench.py writes to stderr


def program_args(*, quick: bool, device: str, out_name: str, data: str | None) -> list[str]:
    """Command-line arguments for bench.py."""
    args = ["--device", device, "--out", out_name]
    if quick:
        args.append("--quick")
    if data:
        args += ["--data", data]
    return args


def _document(stdout: str, stderr: str, where: str) -> dict:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise CheckFailed(
            f"the benchmark printed no report {where}:\n{tail}",
            "run bench.py by hand to see the error",
        ) from None


def in_image(
    image: str,
    name: str,
    out_dir: Path,
    *,
    quick: bool,
    gpus: str | None,
    device: str = "auto",
    timeout: float = 3600,
    on_progress: Progress | None = None,
) -> dict:
    """Run bench.py in a throw-away container of `image`; the report lands in `out_dir`.

    `device` "cuda" makes a container that cannot use the GPUs it was given report no_gpu
    instead of training on the CPU."""
    program, data = bench.program_files()
    make_folder(out_dir, "--out")
    args = program_args(
        quick=quick,
        device=device,
        out_name=f"/out/bench-{name}.json",
        data=f"/opt/envkit/{Path(data).name}",
    )
    result = engine.run_program(
        image,
        Path(program),
        args,
        gpus=gpus,
        shm_size="8g",
        timeout=timeout,
        entry=name,
        extra_files=[Path(data)],
        out_dir=out_dir,
        on_stderr=on_progress,
    )
    return _document(result.stdout, result.stderr, f"in {image}")


def on_host(
    out_dir: Path,
    *,
    quick: bool,
    device: str = "auto",
    python: str | None = None,
    timeout: float = 3600,
    on_progress: Progress | None = None,
) -> dict:
    """Run bench.py with this host's Python (and its torch)."""
    program, data = bench.program_files()
    make_folder(out_dir, "--out")
    args = program_args(
        quick=quick, device=device, out_name=str(out_dir / "bench-host.json"), data=data
    )
    python = python or sys.executable
    try:
        proc = subprocess.Popen(
            [python, program, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise BadInput(f"{python} cannot run: {exc}", "pass a working Python interpreter") from None
    stdout: list[str] = []
    stderr: list[str] = []

    def follow():
        show = on_progress
        for line in proc.stderr:  # always drained, or the benchmark would block on a full pipe
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
        proc.kill()
        proc.wait()
        raise ProgramTimedOut(
            f"the benchmark did not finish within {timeout:.0f}s on this host",
            "try --quick, or run it on a GPU",
        ) from None
    finally:
        if proc.poll() is None:  # interrupted: take the benchmark down with us
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=10)
    text = "".join(stderr)
    if "No module named 'torch'" in text:
        raise CheckFailed(
            f"torch is not importable by {python}",
            "install torch on this host, or run `envkit bench NAME` in an image",
        )
    return _document("".join(stdout), text, "on this host")


def exit_code(doc: dict) -> int:
    """The CLI's exit code for a report: 0 ok, 1 anything else."""
    return 0 if doc.get("status") == "ok" else 1
