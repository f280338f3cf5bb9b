"""Resolve a project's packages on the host with uv: for the image's Python and platform, as
the index was on a date, every file with its sha256 (docs/project.md, "The project lock")."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .errors import BadInput, CheckFailed

# glibc 2.28 and newer: Debian buster / Ubuntu 20.04 and every base envkit builds on.
PLATFORM = "x86_64-manylinux_2_28"
DEFAULT_INDEX = "https://pypi.org/simple"
_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*\\?$")
_HASH = re.compile(r"^\s+--hash=(sha256:[0-9a-f]{64})\s*\\?$")
_SOURCE = re.compile(r"^\s+# from (\S+)$")


@dataclass(frozen=True)
class Pinned:
    """One distribution of a resolution: exact version, where it came from, its file hashes."""

    name: str
    version: str
    source: str | None
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """What to resolve: requirement lines, the packages to keep exactly as they are (the entry
    image's, whatever the date), and for which Python, as of when, from which sources."""

    requirements: tuple[str, ...]
    keep: dict = field(hash=False)  # name -> version, exempt from the as-of date
    python: str
    as_of: str | None = None
    index_url: str = DEFAULT_INDEX
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    offline: bool = False


def uv_binary() -> str:
    """The uv executable: the one installed with envkit's Python package, else uv on PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
    if not found:
        raise BadInput("resolving a project needs uv, which is not installed", "pip install uv")
    return found


def command(request: Request, requirements_in: Path) -> list[str]:
    """The uv command line for a request (the requirements written to `requirements_in`)."""
    cmd = [
        uv_binary(),
        "pip",
        "compile",
        str(requirements_in),
        "--generate-hashes",
        "--python-version",
        request.python,
        "--python-platform",
        PLATFORM,
        "--emit-index-annotation",
        "--no-annotate",
        "--no-header",
        "--no-config",  # a user's uv.toml must not change what the lock says
        "--quiet",
    ]
    if request.offline:
        cmd.append("--no-index")
    else:
        cmd += ["--index-url", request.index_url]
        for url in request.extra_index_urls:
            cmd += ["--extra-index-url", url]
    for place in request.find_links:
        cmd += ["--find-links", place]
    if request.as_of:
        cmd += ["--exclude-newer", request.as_of]
        # The entry image's packages are what they are, whatever their upload date.
        cmd += [f"--exclude-newer-package={name}=false" for name in sorted(request.keep)]
    return cmd


def compile_request(request: Request, ca_bundle: Path | None = None) -> list[Pinned]:
    """Resolve with uv; CheckFailed (with uv's own explanation) when nothing satisfies it."""
    lines = [f"{name}=={version}" for name, version in sorted(request.keep.items())]
    lines += list(request.requirements)
    env = dict(os.environ)
    if ca_bundle:
        env["SSL_CERT_FILE"] = str(ca_bundle)
    with tempfile.TemporaryDirectory(prefix="envkit-resolve-") as tmp:
        requirements_in = Path(tmp) / "requirements.in"
        requirements_in.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            done = subprocess.run(
                command(request, requirements_in),
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            raise CheckFailed("uv did not finish resolving in 15 minutes", "retry") from None
    if done.returncode != 0:
        raise CheckFailed(
            f"cannot resolve the project for Python {request.python}"
            + (f" as of {request.as_of}" if request.as_of else "")
            + ":\n  "
            + "\n  ".join(done.stderr.strip().splitlines()[-20:]),
            "loosen or fix the requirement uv names, or pick a later as_of",
        )
    return parse_compiled(done.stdout)


def parse_compiled(text: str) -> list[Pinned]:
    """The distributions of `uv pip compile --generate-hashes --emit-index-annotation` output."""
    out: list[Pinned] = []
    name = version = source = None
    hashes: list[str] = []

    def flush():
        if name is not None:
            out.append(Pinned(canonicalize_name(name), version, source, tuple(hashes)))

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("# via"):
            continue
        pinned, digest, origin = _PINNED.match(line), _HASH.match(line), _SOURCE.match(line)
        if pinned:
            flush()
            name, version, source, hashes = pinned.group(1), pinned.group(2), None, []
        elif digest and name is not None:
            hashes.append(digest.group(1))
        elif origin and name is not None:
            source = origin.group(1)
        elif line.startswith("-"):
            continue  # an option line (--index-url ...), not a distribution
        elif not line.lstrip().startswith("#"):
            raise CheckFailed(
                f"uv printed a line envkit cannot read: {line!r}", "report it with uv --version"
            )
    flush()
    return sorted(out, key=lambda p: p.name)


def requirement_lines(texts: Sequence[str]) -> list[str]:
    """Requirement lines of a requirements file's text, comments and blanks dropped."""
    lines = []
    for text in texts:
        for raw in text.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", raw).strip()
            if line:
                lines.append(line)
    return lines
