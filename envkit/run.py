"""envkit run / shell: a user's command in an entry's image, with the project mounted."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from . import engine
from .errors import BadInput

# Matched whole (fullmatch): `$` alone would let a trailing newline through.
_GPUS = re.compile(r"auto|all|none|\d+(,\d+)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER = re.compile(r"\d+(:\d+)?")
# The docker CLI reads sizes into a signed 64-bit count of bytes, k being 1024.
_LARGEST_SIZE = 2**63 - 1
_UNIT = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


def resolve_gpus(wanted: str) -> tuple[str | None, str | None]:
    """Turn --gpus into what to request, plus a note when 'auto' found no GPU runtime."""
    if not _GPUS.fullmatch(wanted):
        raise BadInput(
            f"--gpus {wanted!r} is not all, none, auto or a list of indices",
            "e.g. --gpus all, --gpus none, --gpus 0,1",
        )
    if wanted != "auto":
        return (None if wanted == "none" else wanted), None
    if engine.gpu_runtime_available():
        return "all", None
    return None, (
        "no GPU runtime in this Docker engine: running without GPUs "
        "(envkit doctor explains how to add one)"
    )


def env_items(items: tuple[str, ...]) -> tuple[str, ...]:
    """`-e NAME=VALUE` as given, `-e NAME` passed through from this environment."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not _ENV_NAME.fullmatch(name):
            raise BadInput(f"-e {item!r} is not NAME or NAME=VALUE", "e.g. -e WANDB_MODE=offline")
        if not sep:
            if name not in os.environ:
                raise BadInput(
                    f"-e {name}: not set in this environment",
                    f"export {name} first or give -e {name}=VALUE",
                )
            value = os.environ[name]
        out.append(f"{name}={value}")
    return tuple(out)


def docker_size_ok(text: str) -> bool:
    """Whether the docker CLI reads `text` as a size (--shm-size, --memory): a non-negative
    number, then nothing or b, or one of k m g t p with an optional b or ib, any case, the
    two optionally split by one space (8g, 512m, 1.5GB, 1e9, .5g, 64 MiB), and no more bytes
    than a signed 64-bit number holds."""
    cut = max(text.rfind(c) for c in "0123456789. ")
    if cut < 0:
        return False
    # A space splits number and unit; otherwise the unit starts after the last digit or dot.
    number, suffix = text[: cut if text[cut] == " " else cut + 1], text[cut + 1 :]
    try:
        value = float(number)
    except ValueError:
        return False
    suffix = suffix.lower()
    if not math.isfinite(value) or value < 0 or "_" in number:
        return False
    if suffix in ("", "b"):
        unit = ""
    elif suffix[0] in "kmgtp" and suffix[1:] in ("", "b", "ib"):
        unit = suffix[0]
    else:
        return False
    return value * _UNIT[unit] <= _LARGEST_SIZE


def default_user() -> str:
    """The user to run as, so files written to the mount belong to the invoking user."""
    return engine.host_user()


def spec_for(
    image: str,
    entry: str,
    command: tuple[str, ...],
    *,
    workdir: Path,
    gpus: str = "auto",
    user: str | None = None,
    shm_size: str = "8g",
    ipc_host: bool = False,
    env: tuple[str, ...] = (),
    interactive: bool = False,
    tty: bool = False,
) -> tuple[engine.RunSpec, str | None]:
    """The RunSpec for a run, and a note for the user (or None)."""
    if not workdir.is_dir():
        raise BadInput(f"{workdir} is not a folder", "run from your project folder")
    if shm_size and not docker_size_ok(shm_size):  # refused here, not by docker with 125
        raise BadInput(f"--shm-size {shm_size!r} is not a size", "e.g. --shm-size 8g or 512m")
    if user is not None and not _USER.fullmatch(user):
        raise BadInput(f"--user {user!r} is not UID or UID:GID", "e.g. --user 1000:1000")
    engine.require_built(image, entry)
    requested, note = resolve_gpus(gpus)
    spec = engine.RunSpec(
        image=image,
        command=command,
        entry=entry,
        workdir=workdir,
        gpus=requested,
        user=user or default_user(),
        shm_size=shm_size,
        ipc_host=ipc_host,
        env=env_items(env),
        interactive=interactive,
        tty=tty,
    )
    return spec, note
