"""Render an entry's Dockerfile from its template: pure text, no engine."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from packaging.version import Version

from . import facts
from .errors import BadInput
from .matrix import SAFE_URL, Entry

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


def source_packages(entry: Entry) -> list[str]:
    """The torch family members the entry's own source serves (all of them from PyPI); the
    others (torchvision 0.2.x lives on PyPI alone) come with the second, PyPI step."""
    if not entry.index_url:
        return torch_packages(entry)
    release = facts.torch_release(entry.torch)
    elsewhere = set(release.pypi_only) if release else set()
    return [p for p in torch_packages(entry) if p.split("==")[0] not in elsewhere]


def torch_source(entry: Entry) -> str:
    """pip options that make the entry's index the only source of the torch family."""
    if not entry.index_url:
        return ""
    url = entry.index_url
    if not SAFE_URL.fullmatch(url):  # the matrix refuses these; an Entry made in code may not
        raise BadInput(
            f"{entry.name}: index_url {url!r} has characters a Dockerfile cannot carry safely",
            "percent-encode them (%20 for a space, %22 for a quote)",
        )
    if url.endswith(".html"):
        return f"--no-index --find-links {url}"
    return f"--index-url {url}"


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


def require_cuda(entry: Entry) -> str | None:
    """NVIDIA_REQUIRE_CUDA for a CUDA entry (None for CPU-only): NVIDIA's own clauses for its
    CUDA, keeping only the driver branches this image can run on.

    NVIDIA's images ship the cuda-compat libraries, so their branch clauses include drivers
    older than CUDA's minor-version floor; envkit's images carry the wheels' runtime alone, so
    a branch below `facts.min_driver_to_run` would start a container whose CUDA then fails.
    """
    if not entry.cuda:
        return None
    release = facts.parse_release(entry.cuda)
    head = f"cuda>={release.major}.{release.minor}" if release else f"cuda>={entry.cuda}"
    nvidia = facts.nvidia_requirement(entry.cuda)
    floor = facts.min_driver_to_run(entry.cuda)
    if nvidia is None:
        return head
    floor_branch = facts.version_numbers(floor)[0] if floor else 0
    branches = tuple(b for b in nvidia.branches if int(b) >= floor_branch)
    extra = [c for c in nvidia.extra if (facts.version_numbers(c) or (0,))[0] >= floor_branch]
    clauses = [c for c in nvidia.clauses(branches) if c not in nvidia.extra] + extra
    return " ".join([head, *clauses])


def gpu_requirements(entry: Entry) -> dict[str, str]:
    """The labels that say what an image needs from the host's GPU stack ("none" for CPU)."""
    arch = facts.arch_list(entry.torch, entry.cuda) if entry.cuda else None
    return {
        "io.envkit.arch_list": " ".join(arch) if arch else ("unknown" if entry.cuda else "none"),
        "io.envkit.min_driver": (facts.min_driver_to_run(entry.cuda) or "unknown")
        if entry.cuda
        else "none",
    }


def requirements_block(entry: Entry) -> str:
    """Dockerfile lines with the labels above and, for CUDA, NVIDIA_REQUIRE_CUDA: the NVIDIA
    Container Toolkit then refuses a too-old driver when the container starts."""
    labels = " \\\n      ".join(f'{k}="{v}"' for k, v in gpu_requirements(entry).items())
    lines = [f"LABEL {labels}"]
    required = require_cuda(entry)
    if required:
        lines.append(f'ENV NVIDIA_REQUIRE_CUDA="{required}"')
    return "\n".join(lines)


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
        "source_packages": " ".join(shlex.quote(p) for p in source_packages(entry)),
        "pins": "".join(" " + shlex.quote(p) for p in entry.pins),
        "import_check": import_check(entry),
        "gpu_requirements": requirements_block(entry),
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
