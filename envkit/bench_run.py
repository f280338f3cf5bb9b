"""Run the bundled benchmark (envkit/inside/bench.py) in an entry's image or on this host."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from . import inside, programs
from . import run as runner
from .errors import BadInput, CheckFailed, make_folder
from .inside import bench
from .matrix import Entry
from .programs import Place, Progress


@dataclass(frozen=True)
class Request:
    """What `envkit bench ARGS [--host]` asks for: two reports to compare, or a run in one
    entry's image, or (neither) a run on this host."""

    compare: tuple[str, str] | None = None
    entry: str | None = None


def read_request(args: Sequence[str], *, on_host: bool) -> Request:
    """Interpret bench's words: `compare A.json B.json`, `NAME`, or none with --host."""
    if args and args[0] == "compare":
        if len(args) != 3:
            raise BadInput("compare takes two reports", "envkit bench compare A.json B.json")
        return Request(compare=(args[1], args[2]))
    if on_host == bool(args) or len(args) > 1:
        raise BadInput("name one entry, or pass --host", "envkit bench NAME | envkit bench --host")
    return Request(entry=args[0] if args else None)


class Devices(NamedTuple):
    """What a bench in an image runs with."""

    gpus: str | None  # attached to the container (None: none)
    device: str  # bench.py's --device
    note: str | None  # why --gpus auto attached none


def devices_for(gpus: str, entry: Entry) -> Devices:
    """The GPUs `--gpus` attaches and the device bench.py must use. GPUs given to a CUDA build
    must be used: --device cuda then, so a run that cannot use them reports no_gpu instead of
    silently training on the CPU; otherwise bench.py chooses (auto)."""
    requested, note = runner.resolve_gpus(gpus)
    return Devices(requested, "cuda" if requested and entry.cuda else "auto", note)


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


def run(
    place: Place,
    name: str,
    out_dir: Path,
    *,
    quick: bool,
    device: str = "auto",
    timeout: float = 3600,
    on_progress: Progress | None = None,
) -> dict:
    """Run bench.py where `place` says; the report lands in `out_dir` as bench-NAME.json.

    `device` "cuda" makes a run that cannot use the GPUs it was given report no_gpu instead of
    training on the CPU."""
    found = bench.find_data()
    data = [Path(found)] if found else []
    make_folder(out_dir, "--out")
    args = program_args(
        quick=quick,
        device=device,
        out_name=place.out(out_dir, f"bench-{name}.json"),
        data=place.file(data[0]) if data else None,
    )
    result = programs.run(
        place,
        inside.BENCH,
        args,
        timeout=timeout,
        extra_files=data,
        out_dir=out_dir,
        on_stderr=on_progress,
    )
    if place.on_host and "No module named 'torch'" in result.stderr:
        raise CheckFailed(
            f"torch is not importable by {place.python or sys.executable}",
            "install torch on this host, or run `envkit bench NAME` in an image",
        )
    return _document(result.stdout, result.stderr, place.describe())


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
    """Run bench.py in a throw-away container of `image` (see `run`)."""
    place = Place(image=image, gpus=gpus, shm_size="8g", entry=name)
    return run(
        place, name, out_dir, quick=quick, device=device, timeout=timeout, on_progress=on_progress
    )


def on_host(
    out_dir: Path,
    *,
    quick: bool,
    device: str = "auto",
    python: str | None = None,
    timeout: float = 3600,
    on_progress: Progress | None = None,
) -> dict:
    """Run bench.py with this host's Python (and its torch) (see `run`)."""
    return run(
        Place(python=python),
        "host",
        out_dir,
        quick=quick,
        device=device,
        timeout=timeout,
        on_progress=on_progress,
    )


def exit_code(doc: dict) -> int:
    """The CLI's exit code for a report: 0 ok, 1 anything else."""
    return 0 if doc.get("status") == "ok" else 1
