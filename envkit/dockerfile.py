"""Render an entry's Dockerfile from its template: pure text, no engine."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from packaging.version import Version

from . import facts
from .errors import BadInput
from .matrix import Entry

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# The devel template is offered on Ubuntu 20.04 and later; ubuntu.yaml lists 18.04 for check.
_OLDEST_DEVEL_UBUNTU = (20, 4)


def templates_dir() -> Path:
    """The folder of shipped Dockerfile templates."""
    return Path(__file__).with_name("dockerfiles")


def template_path(entry: Entry) -> Path:
    """The template file an entry renders from."""
    return templates_dir() / f"{entry.dockerfile}.Dockerfile"


def torch_packages(entry: Entry) -> list[str]:
    """Exact pins of the torch family, without local version tags (the source picks the variant)."""
    packages = [f"torch=={entry.torch}"]
    if entry.torchvision:
        packages.append(f"torchvision=={entry.torchvision}")
    if entry.torchaudio:
        packages.append(f"torchaudio=={entry.torchaudio}")
    return packages


def torch_source(entry: Entry) -> str:
    """pip options that make the entry's index the only source of the torch family."""
    if not entry.index_url:
        return ""
    if entry.index_url.endswith(".html"):
        return f"--no-index --find-links {entry.index_url}"
    return f"--index-url {entry.index_url}"


def import_check(entry: Entry) -> str:
    """A Python one-liner (no double quotes) failing unless the promised versions import."""
    checks = [("torch", entry.torch)]
    if entry.torchvision:
        checks.append(("torchvision", entry.torchvision))
    if entry.torchaudio:
        checks.append(("torchaudio", entry.torchaudio))
    modules = ", ".join(name for name, _ in checks)
    wanted = ", ".join(f"'{name}': '{version}'" for name, version in checks)
    return (
        f"import {modules}; "
        f"want = {{{wanted}}}; "
        "have = {n: __import__(n).__version__.split('+')[0] for n in want}; "
        "assert have == want, 'installed %s, entry promises %s' % (have, want); "
        "print('envkit: imports ok', have)"
    )


def ubuntu_repo(entry: Entry) -> str:
    """NVIDIA's apt repository for the devel base (chosen by the entry's Python)."""
    ubuntus = [
        u
        for u in facts.ubuntu_releases()
        if facts.version_numbers(u.release) >= _OLDEST_DEVEL_UBUNTU
    ]
    for ubuntu in ubuntus:
        if ubuntu.python == entry.python:
            return ubuntu.cuda_repo
    raise BadInput(
        f"entry {entry.name}: no Ubuntu release ships Python {entry.python} for a devel image",
        f"use Python {' or '.join(u.python for u in ubuntus)} for devel entries",
    )


def cuda_apt_packages(entry: Entry) -> str:
    """The toolkit packages from NVIDIA's repository: nvcc, the runtime and library headers."""
    suffix = (entry.cuda or "").replace(".", "-")
    names = ["cuda-nvcc", "cuda-cudart-dev", "cuda-libraries-dev", "cuda-nvtx"]
    if entry.cuda and Version(entry.cuda) >= Version("12.0"):
        # From 12.0 the profiler headers torch includes live in their own package.
        names.append("cuda-profiler-api")
    return " ".join(f"{name}-{suffix}" for name in names)


def values(entry: Entry) -> dict[str, str]:
    """Every placeholder a template may use, as text."""
    out = {
        "name": entry.name,
        "torch": entry.torch,
        "torchvision": entry.torchvision or "none",
        "torchaudio": entry.torchaudio or "none",
        "cuda": entry.cuda or "none",
        "cudnn": entry.cudnn or "none",
        "python": entry.python,
        "variant": entry.variant,
        "base_image": entry.base_image,
        "torch_source": torch_source(entry),
        "torch_packages": " ".join(shlex.quote(p) for p in torch_packages(entry)),
        "pins": "".join(" " + shlex.quote(p) for p in entry.pins),
        "import_check": import_check(entry),
    }
    if entry.flavour == "devel":
        out["ubuntu_repo"] = ubuntu_repo(entry)
        out["cuda_apt_packages"] = cuda_apt_packages(entry)
    return out


def render_text(template: str, data: dict[str, str], origin: str = "template") -> str:
    """Fill {{name}} placeholders; an unknown placeholder is an error, not an empty string."""

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in data:
            raise BadInput(
                f"{origin}: unknown placeholder {{{{{key}}}}}",
                f"use one of {', '.join(sorted(data))}",
            )
        return data[key]

    return _PLACEHOLDER.sub(fill, template)


def render(entry: Entry) -> str:
    """The Dockerfile text for an entry."""
    path = template_path(entry)
    try:
        template = path.read_text(encoding="utf-8")
    except OSError:
        known = sorted(p.name.split(".")[0] for p in templates_dir().glob("*.Dockerfile"))
        raise BadInput(
            f"entry {entry.name}: no Dockerfile template {path.name}",
            f"set dockerfile to one of {', '.join(known)}",
        ) from None
    return render_text(template, values(entry), str(path))
