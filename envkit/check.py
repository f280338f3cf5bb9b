"""Rules over facts: does each matrix entry describe a stack that really exists and installs?"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from . import dockerfile, facts, stacks
from .errors import BadInput
from .matrix import FLAVOURS, PYTORCH_INDEX, Entry, Matrix, Problem

_PYTHON_BASE = re.compile(r"(?:^|/)python:(\d+\.\d+)")
_CUDA_BASE = re.compile(r"(?:^|/)nvidia/cuda:(\d+\.\d+)")
# PyTorch's index serves each variant under its own folder: .../whl/cu118, .../whl/cpu.
_INDEX_VARIANT = re.compile(re.escape(PYTORCH_INDEX.partition("://")[2]) + r"/(cu\d+|cpu)\b")
_UBUNTU_BASE = re.compile(r"(?:^|/)ubuntu:(\d\d\.\d\d)")


def _release_cudas(release) -> str:
    return ", ".join(release.cuda) or "none"


def entry_problems(entry: Entry, path: str) -> list[Problem]:
    """Every rule an entry breaks, each located at the line of the offending key."""
    out: list[Problem] = []

    def bad(key: str, message: str, fix: str | None = None, severity: str = "error") -> None:
        out.append(Problem(path, entry.line_of(key), message, fix, severity))

    release = facts.torch_release(entry.torch)
    if release is None:
        known = [r.torch for r in facts.torch_releases()]
        same_minor = [v for v in known if v.rsplit(".", 1)[0] == entry.torch.rsplit(".", 1)[0]]
        bad(
            "torch",
            f"torch {entry.torch} was never released",
            f"use one of {', '.join(same_minor)}" if same_minor else "see `envkit list`",
        )
        return out

    for package in ("torchvision", "torchaudio"):
        wanted = getattr(release, package)
        have = getattr(entry, package)
        if have is not None and wanted is None:
            bad(package, f"no {package} release pairs with torch {entry.torch}", f"drop {package}")
        elif have is not None and have != wanted:
            bad(
                package,
                f"{package} {have} does not pair with torch {entry.torch}",
                f"use {package} {wanted}",
            )
    if entry.torchvision is None and release.torchvision is not None:
        bad(
            "torchvision",
            f"entry has no torchvision (pairs: {release.torchvision})",
            f'add torchvision: "{release.torchvision}"',
            "warning",
        )

    if entry.python not in release.python:
        bad(
            "python",
            f"torch {entry.torch} has no wheels for Python {entry.python}",
            f"use one of {', '.join(release.python)}",
        )

    if entry.cuda is not None:
        if entry.cuda not in release.cuda:
            bad(
                "cuda",
                f"torch {entry.torch} was never published for CUDA {entry.cuda}",
                f"published CUDA variants: {_release_cudas(release)}",
            )
        else:
            cudnn = release.cudnn.get(entry.cuda)
            if entry.cudnn is None and cudnn:
                bad(
                    "cudnn",
                    f"cudnn missing (the {entry.variant} wheel bundles {cudnn})",
                    f'add cudnn: "{cudnn}"',
                )
            elif cudnn and entry.cudnn != cudnn:
                bad(
                    "cudnn",
                    f"the {entry.variant} wheel of torch {entry.torch} bundles cuDNN {cudnn},"
                    f" not {entry.cudnn}",
                    f'use cudnn: "{cudnn}"',
                )
            if facts.cuda_release(entry.cuda) is None:
                bad(
                    "cuda", f"CUDA {entry.cuda} has no facts row", "add it to envkit/data/cuda.yaml"
                )
    elif entry.cudnn is not None:
        bad("cudnn", "a CPU-only entry has no cuDNN", "remove cudnn or set cuda")

    on_pypi = entry.cuda == release.pypi_cuda
    # An index is worth naming only for a variant that was published (else the cuda row says so).
    published = entry.cuda is None or entry.cuda in release.cuda
    if entry.index_url is None and not on_pypi and published:
        what = f"CUDA {release.pypi_cuda}" if release.pypi_cuda else "no Linux CUDA wheel"
        bad(
            "index_url",
            f"PyPI carries only {what} for torch {entry.torch}; the {entry.variant} wheel lives "
            "on PyTorch's index",
            f"set index_url: {PYTORCH_INDEX}/{entry.variant}",
        )
    served = _INDEX_VARIANT.search(entry.index_url or "")
    if served:
        variant = served.group(1)
        if variant != entry.variant:
            bad(
                "index_url",
                f"index {entry.index_url} serves {variant} wheels, not {entry.variant}",
                f"use {PYTORCH_INDEX}/{entry.variant}",
            )

    if release.yanked:
        bad(
            "torch",
            f"torch {entry.torch} was yanked from PyPI"
            + (f" ({release.note})" if release.note else ""),
            "pip installs it only through an exact == pin (envkit pins exactly)",
            "warning",
        )

    base_python = _PYTHON_BASE.search(entry.base_image)
    if base_python and base_python.group(1) != entry.python:
        bad(
            "base_image",
            f"base image {entry.base_image} has Python {base_python.group(1)}, entry needs "
            f"{entry.python}",
            f"use python:{entry.python}-slim-...",
        )
    ubuntu_base = _UBUNTU_BASE.search(entry.base_image)
    ubuntu = facts.ubuntu_release(ubuntu_base.group(1)) if ubuntu_base else None
    if ubuntu and ubuntu.python != entry.python:
        bad(
            "base_image",
            f"Ubuntu {ubuntu.release} ships Python {ubuntu.python}, entry needs {entry.python}",
            "pick the Ubuntu release whose python3 matches",
        )
    cuda_base = _CUDA_BASE.search(entry.base_image)
    if cuda_base:
        if entry.cuda is None or cuda_base.group(1) != entry.cuda:
            bad(
                "base_image",
                f"base image {entry.base_image} carries CUDA {cuda_base.group(1)}, entry has "
                f"CUDA {entry.cuda or 'none (CPU)'}",
                "make the base image's CUDA match the entry",
            )
        if Version(cuda_base.group(1)) < Version("12.0"):
            bad(
                "base_image",
                f"nvidia/cuda tags for CUDA {cuda_base.group(1)} were deleted from Docker Hub "
                "(NVIDIA removes tags after end of life)",
                "use a python:*-slim base (the wheel bundles the CUDA runtime) or the devel "
                "template, which installs the toolkit from NVIDIA's apt repository",
            )
    pinned = {_pin_name(p) for p in entry.pins}
    missing: dict[str, list[str]] = {}  # one problem a pin, however many rules want it
    for rule in facts.required_pins(entry.torch, entry.torchvision):
        if _pin_name(rule["pin"]) not in pinned:
            missing.setdefault(rule["pin"], []).append(rule["why"])
    for pin, whys in missing.items():
        bad("pins", f"missing pin {pin!r}: {'; '.join(whys)}", f"add {pin!r} to pins")
    if entry.flavour == "devel" and entry.cuda is None:
        bad("flavour", "a devel entry needs a CUDA version (nvcc)", "set cuda or use runtime")
    if entry.dockerfile in FLAVOURS and entry.dockerfile != entry.flavour:
        bad(
            "dockerfile",
            f"dockerfile {entry.dockerfile} is the {entry.dockerfile} template, but the entry's "
            f"flavour is {entry.flavour}",
            f"set flavour: {entry.dockerfile}, or drop the dockerfile key",
        )
    if not any(p.severity == "error" for p in out):
        try:
            dockerfile.render(entry)  # the template exists and every placeholder is known
        except BadInput as exc:
            bad("dockerfile", exc.message, exc.fix)
    return out


def _pin_name(pin: str) -> str:
    """The normalized distribution name of a pin ('NumPy<2' -> 'numpy')."""
    try:
        return canonicalize_name(Requirement(pin).name)
    except InvalidRequirement:
        return pin.strip().lower()


def check(matrix: Matrix) -> list[Problem]:
    """All rule problems in a loaded matrix, in file order."""
    problems = [p for entry in matrix.entries for p in entry_problems(entry, matrix.path)]
    return sorted(problems, key=lambda p: p.line)


def check_stacks(matrix: Matrix) -> tuple[int, list[Problem]]:
    """Every rule applied to every derived stack (those no curated entry builds): how many were
    checked, and their problems, each located at the stack's name."""
    curated = {e.name for e in matrix.entries}
    derived = [e for e in stacks.every_stack(matrix.entries) if e.name not in curated]
    problems = [p for entry in derived for p in entry_problems(entry, f"{entry.name} (derived)")]
    return len(derived), problems


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that make a matrix wrong (warnings excluded)."""
    return [p for p in problems if p.severity == "error"]
