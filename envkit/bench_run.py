"""Run the bundled benchmark (envkit/bench.py) in an entry's image or on this host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import bench, engine
from .errors import CheckFailed

# bench.py's exit codes: 0 ok, 1 a check failed, 3 no GPU although cuda was demanded,
# 4 the GPU's architecture is not in the build.
STATUS_EXIT = {"ok": 0, "failed": 1, "no_gpu": 3, "unsupported_arch": 4}


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
    image: str, name: str, out_dir: Path, *, quick: bool, gpus: str | None, timeout: float = 3600
) -> dict:
    """Run bench.py in a throw-away container of `image`; the report lands in `out_dir`."""
    program, data = bench.program_files()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = program_args(
        quick=quick,
        device="auto",
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
    )
    return _document(result.stdout, result.stderr, f"in {image}")


def on_host(
    out_dir: Path,
    *,
    quick: bool,
    device: str = "auto",
    python: str | None = None,
    timeout: float = 3600,
) -> dict:
    """Run bench.py with this host's Python (and its torch)."""
    program, data = bench.program_files()
    out_dir.mkdir(parents=True, exist_ok=True)
    args = program_args(
        quick=quick, device=device, out_name=str(out_dir / "bench-host.json"), data=data
    )
    done = subprocess.run(
        [python or sys.executable, program, *args], capture_output=True, text=True, timeout=timeout
    )
    if "No module named 'torch'" in done.stderr:
        raise CheckFailed(
            f"torch is not importable by {python or sys.executable}",
            "install torch on this host, or run `envkit bench NAME` in an image",
        )
    return _document(done.stdout, done.stderr, "on this host")


def exit_code(doc: dict) -> int:
    """The CLI's exit code for a report: 0 ok, 1 anything else."""
    return 0 if doc.get("status") == "ok" else 1
