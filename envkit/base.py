"""envkit base: a local base image for a Python with no registry, recorded in the settings.

Debian's own Python comes from a debootstrap of the release that ships it (bookworm: 3.11); any
other Python is a CPython installation on this host (pyenv's, or `make install`) copied onto
that base. The work is done by the shell scripts shipped beside this module (envkit/bases/),
which `scripts/build-base.sh` and `scripts/build-python-base.sh` also run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import engine, settings
from .errors import BadInput, BuildFailed

SCRIPTS = Path(__file__).resolve().parent / "bases"
# The Python each Debian release that the mirrors still serve ships as python3.
DEBIAN_PYTHON = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
FOUNDATION = "bookworm"  # what a copied CPython lands on (its glibc must not be older)


@dataclass(frozen=True)
class BaseResult:
    """The image made (or found), what it holds, and the setting it was recorded as."""

    image: str
    python: str
    version_line: str
    recorded_as: str | None
    config_file: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prefix_python(prefix: Path) -> str:
    """The X.Y of the CPython installed under `prefix` (from its bin/python3.X)."""
    versions = sorted(
        p.name[len("python") :]
        for p in (prefix / "bin").glob("python3.*")
        if re.fullmatch(r"python3\.\d+", p.name)
    )
    if not versions:
        raise BadInput(
            f"no bin/python3.X under {prefix}",
            "give the prefix of a CPython installation, e.g. ~/.pyenv/versions/3.8.18",
        )
    return versions[0]


def pyenv_prefixes(python: str) -> list[Path]:
    """CPython installations of pyenv for `python` on this host, newest patch last."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = [
        p for p in root.glob(f"{python}.*") if re.fullmatch(rf"{re.escape(python)}\.\d+", p.name)
    ]
    return sorted(found, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def _check_python(python: str) -> None:
    if not settings.PYTHON_KEY.match(python):
        raise BadInput(f"{python!r} is not a Python version like 3.8", "e.g. envkit base 3.8")


def _can_debootstrap() -> None:
    """Refuse early when debootstrap cannot run here, with how to make it run."""
    if shutil.which("debootstrap") is None:
        raise BadInput(
            "envkit base needs debootstrap to make a Debian base without a registry",
            "install it (as root): apt-get install -y debootstrap",
        )
    if os.geteuid() != 0:
        raise BadInput(
            "envkit base needs root for debootstrap (it makes device nodes and chroots)",
            "run it as root, e.g. sudo envkit base ...; then, as yourself, "
            "envkit config set base_images.X.Y IMAGE (root's config is not yours)",
        )


def _run_script(name: str, args: list[str], rebuild: bool, on_line) -> None:
    env = dict(os.environ)
    if rebuild:
        env["ENVKIT_REBUILD_BASE"] = "1"
    lines: list[str] = []
    with subprocess.Popen(
        ["bash", str(SCRIPTS / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(lines[-1])
    if process.returncode != 0:
        raise BuildFailed(
            f"{name} failed (exit {process.returncode}): " + " | ".join(lines[-5:]),
            "read the lines above; a mirror other than deb.debian.org: ENVKIT_DEBIAN_MIRROR=URL",
        )


def make_base(
    python: str,
    *,
    prefix: Path | None = None,
    image: str | None = None,
    rebuild: bool = False,
    record: bool = True,
    on_line: Callable[[str], None] | None = None,
) -> BaseResult:
    """Make (or find) a base image with `python` as python3, and record it as the setting
    base_images.<python> in the user's config file."""
    _check_python(python)
    if prefix is None and python not in DEBIAN_PYTHON:
        found = pyenv_prefixes(python)
        example = found[-1] if found else f"~/.pyenv/versions/{python}.N"
        raise BadInput(
            f"no Debian release that the mirrors serve ships Python {python}",
            f"copy a CPython built on this host onto a Debian base: envkit base {python} "
            f"--from-prefix {example}",
        )
    if prefix is None:
        release = DEBIAN_PYTHON[python]
        image = image or f"envkit-base:{release}"
        if rebuild or engine.image_id(image) is None:
            _can_debootstrap()
        _run_script("build-base.sh", [release, image], rebuild, on_line)
    else:
        prefix = prefix.expanduser()
        has = prefix_python(prefix)
        if has != python:
            raise BadInput(
                f"{prefix} holds Python {has}, not {python}",
                f"envkit base {has} --from-prefix {prefix}, or give a {python} prefix",
            )
        image = image or f"envkit-base:py{python}"
        foundation = f"envkit-base:{FOUNDATION}"
        if engine.image_id(foundation) is None:
            _can_debootstrap()
            _run_script("build-base.sh", [FOUNDATION, foundation], False, on_line)
        _run_script("build-python-base.sh", [str(prefix), image, foundation], rebuild, on_line)
    check = engine.run_command(image, ["python3", "-V"], entry="base")
    version_line = (check.stdout or check.stderr).strip()
    if check.exit_code != 0 or not version_line.startswith(f"Python {python}."):
        raise BuildFailed(
            f"{image} does not run Python {python}: {version_line or check.exit_code}",
            f"remake it: envkit base {python} --rebuild",
        )
    recorded = config = None
    if record:
        recorded = f"{settings.PER_PYTHON}.{python}"
        config = str(settings.set_in_config(settings.config_path(), recorded, image))
    return BaseResult(image, python, version_line, recorded, config)
