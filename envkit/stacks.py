"""Every published stack as an entry: (torch release, variant, Python) derived from the facts.

matrix.yaml names the well-known stacks; any other combination the facts allow is an entry on
demand, named by a grammar (docs/project.md, "Any published stack"):

    torch<X.Y.Z>-<variant>[-py<A.B>]     torch1.7.0-cu102-py3.8, torch1.7.0-cu102, torch1.7.0-cpu

<variant> is `cpu` or a CUDA wheel tag (`cu102`); without `-py` the default Python is the one
the curated entries use (the newest the release has wheels for, up to PREFERRED_PYTHON_MAX).
The base image, the pip source and the import-critical pins follow the same rules as the
curated entries (scripts/gen_matrix.py writes matrix.yaml with these functions).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from packaging.version import Version

from . import facts
from .errors import UnknownEntry
from .matrix import PYTORCH_INDEX, Entry

# python:X.Y-slim tags by the Debian release that still serves them.
DEBIAN_FOR_PYTHON = {"3.5": "buster", "3.6": "buster", "3.7": "bullseye"}
# The default Python of a stack: the newest with wheels, but no newer than this.
PREFERRED_PYTHON_MAX = Version("3.11")
# The programs envkit runs inside images (probe, bench) need Python 3.6.
OLDEST_PYTHON = Version("3.6")

NAME = re.compile(
    r"^torch(?P<torch>\d+\.\d+\.\d+)-(?P<variant>cpu|cu\d{2,3})(?:-py(?P<python>\d+\.\d+))?$"
)
_RELEASE_PREFIX = re.compile(r"^torch(\d+\.\d+\.\d+)(?=-|$)")


@dataclass(frozen=True)
class StackId:
    """The parts of a stack name: torch release, CUDA version (None: CPU), Python (None: the
    default one)."""

    torch: str
    cuda: str | None
    python: str | None = None


def variant_tag(cuda: str | None) -> str:
    """The wheel tag of a variant: 'cpu' or 'cu102'."""
    return "cpu" if cuda is None else "cu" + cuda.replace(".", "")


def _cuda_of(tag: str) -> str | None:
    return None if tag == "cpu" else f"{tag[2:-1]}.{tag[-1]}"


def parse_name(name: str) -> StackId | None:
    """The stack a name in the grammar names; None when the name is not in the grammar."""
    match = NAME.match(name.strip().lower())
    if not match:
        return None
    return StackId(match.group("torch"), _cuda_of(match.group("variant")), match.group("python"))


def stack_name(torch: str, cuda: str | None, python: str) -> str:
    """The canonical name of a derived stack: torch1.7.0-cu102-py3.8."""
    return f"torch{torch}-{variant_tag(cuda)}-py{python}"


def pythons(release: facts.TorchRelease, cuda: str | None) -> tuple[str, ...]:
    """The Pythons a stack of this release and variant can have (3.6 or newer)."""
    variant = "cpu" if cuda is None else cuda
    return tuple(p for p in release.pythons_for(variant) if Version(p) >= OLDEST_PYTHON)


def default_python(release: facts.TorchRelease, cuda: str | None = None) -> str:
    """The Python a stack gets when its name gives none (the curated entries' rule)."""
    allowed = pythons(release, cuda) or release.python
    usable = [p for p in allowed if Version(p) <= PREFERRED_PYTHON_MAX]
    return max(usable or allowed, key=Version)


def base_image_for(python: str) -> str:
    """The python:*-slim base image for a Python version."""
    return f"python:{python}-slim-{DEBIAN_FOR_PYTHON.get(python, 'bookworm')}"


def index_for(release: facts.TorchRelease, cuda: str | None) -> str | None:
    """The entry's index_url: where its variant's wheels live (None: PyPI)."""
    return facts.wheel_url(release, "cpu" if cuda is None else cuda, PYTORCH_INDEX)


def pins_for(torch: str, torchvision: str | None) -> tuple[str, ...]:
    """The import-critical pins (pins.yaml) of a torch/torchvision pair, each once."""
    return tuple(dict.fromkeys(rule["pin"] for rule in facts.required_pins(torch, torchvision)))


def why_not(stack: StackId) -> str | None:
    """Why the facts allow no such stack; None when they do."""
    release = facts.torch_release(stack.torch)
    if release is None:
        return f"torch {stack.torch} was never released"
    if stack.cuda is not None and stack.cuda not in release.cuda:
        published = ", ".join(variant_tag(c) for c in (None, *release.cuda))
        return (
            f"torch {stack.torch} has no {variant_tag(stack.cuda)} build (published: {published})"
        )
    if stack.python is not None:
        allowed = pythons(release, stack.cuda)
        if stack.python not in allowed:
            return (
                f"torch {stack.torch} {variant_tag(stack.cuda)} has no wheels for Python "
                f"{stack.python} that envkit can use (Pythons: {', '.join(allowed) or 'none'}"
                + ("; envkit's images need Python 3.6 or newer)" if allowed else ")")
            )
    elif not pythons(release, stack.cuda):
        return f"torch {stack.torch} has wheels only for Pythons older than 3.6"
    return None


def derive(stack: StackId) -> Entry:
    """The entry for a stack the facts allow; raises UnknownEntry saying why not otherwise."""
    reason = why_not(stack)
    if reason:
        raise UnknownEntry(reason, _near_fix(stack))
    release = facts.torch_release(stack.torch)
    python = stack.python or default_python(release, stack.cuda)
    name = stack_name(release.torch, stack.cuda, python)
    short = f"torch{release.torch}-{variant_tag(stack.cuda)}"
    return Entry(
        name=name,
        torch=release.torch,
        torchvision=release.torchvision,
        torchaudio=release.torchaudio,
        cuda=stack.cuda,
        cudnn=release.cudnn.get(stack.cuda) if stack.cuda else None,
        python=python,
        flavour="runtime",
        base_image=base_image_for(python),
        index_url=index_for(release, stack.cuda),
        aliases=(short,) if python == default_python(release, stack.cuda) else (),
        pins=pins_for(release.torch, release.torchvision),
        description="derived from the facts (envkit/data/torch.yaml)",
    )


def same_stack(a: Entry, b: Entry) -> bool:
    """Do two entries build the same runtime stack (torch, variant, Python)?"""
    return (a.torch, a.cuda, a.python, a.flavour) == (b.torch, b.cuda, b.python, b.flavour)


def resolve(name: str, curated: tuple[Entry, ...] = ()) -> Entry | None:
    """The entry a stack name gives: the curated one for the same stack, else a derived one.

    None when the name is not in the grammar; UnknownEntry when it is but the facts allow no
    such stack.
    """
    stack = parse_name(name)
    if stack is None:
        return None
    derived = derive(stack)
    return next((e for e in curated if same_stack(e, derived)), derived)


def every_stack(curated: tuple[Entry, ...] = ()) -> list[Entry]:
    """Every runtime stack the facts allow, oldest torch first: the curated entry where one
    builds the same stack, a derived one otherwise."""
    out = []
    for release in facts.torch_releases():
        for cuda in (None, *release.cuda):
            for python in pythons(release, cuda):
                derived = derive(StackId(release.torch, cuda, python))
                out.append(next((e for e in curated if same_stack(e, derived)), derived))
    return out


def suggest(name: str, n: int = 3) -> list[str]:
    """Stack names close to a misspelt one of a known torch release (empty otherwise)."""
    match = _RELEASE_PREFIX.match(name.strip().lower())
    release = facts.torch_release(match.group(1)) if match else None
    if release is None:
        return []
    names = []
    for cuda in (None, *release.cuda):
        short = f"torch{release.torch}-{variant_tag(cuda)}"
        names += [short] + [stack_name(release.torch, cuda, p) for p in pythons(release, cuda)]
    return difflib.get_close_matches(name.strip().lower(), names, n=n, cutoff=0)


def _near_fix(stack: StackId) -> str:
    release = facts.torch_release(stack.torch)
    if release is None:
        minor = ".".join(stack.torch.split(".")[:2])
        same = [r.torch for r in facts.torch_releases() if r.torch.startswith(minor + ".")]
        return (
            f"releases of torch {minor}: {', '.join(same)}"
            if same
            else "see `envkit list --all` for every stack"
        )
    wanted = f"torch{stack.torch}-{variant_tag(stack.cuda)}" + (
        f"-py{stack.python}" if stack.python else ""
    )
    close = suggest(wanted)
    return (
        f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see envkit list --all"
    )


def whole_space(curated: tuple[Entry, ...] = ()) -> list[Entry]:
    """Every stack the facts allow (curated names where they build the same stack), then the
    curated entries that are no such stack (devel images, a project's own entries)."""
    space = every_stack(curated)
    listed = {e.name for e in space}
    return space + [e for e in curated if e.name not in listed]
