"""envkit init: read a project's torch pins and the host's GPU, pick the newest stack that fits.

Pins come from the files a project already has (envkit.pins reads them; nothing of the project
is executed). The candidates are every stack the facts allow (envkit.stacks): the curated
entries, and a derived stack wherever a project pins what no curated entry has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.version import Version

from . import facts as fact_tables
from . import stacks
from .errors import BadInput, CheckFailed
from .facts import parse_release
from .gpu import fit as gpu_fit
from .gpu import host as gpu_host
from .gpu.host import GpuHost
from .matrix import Entry, Matrix, select
from .pins import Pin, find_pins
from .project import Project, write_project

__all__ = ["Choice", "Pin", "choose", "detect_host", "find_pins", "init_project", "write_choice"]


class Facts(Protocol):
    """The facts init consults (envkit.facts provides them): those envkit.gpu.fit reads."""

    def min_driver_for(self, cuda: str) -> str | None: ...

    def min_driver_to_run(self, cuda: str) -> str | None: ...

    def arch_list(self, torch: str, cuda: str) -> tuple | None: ...

    def kernel_supports(self, arch_list, capability: str) -> bool: ...

    def library_limit(self, torch: str, cuda: str) -> str | None: ...

    def beyond_libraries(self, torch: str, cuda: str, capability: str) -> bool: ...


@dataclass(frozen=True)
class Choice:
    """The chosen entry and the lines that explain the choice."""

    entry: Entry
    pins: tuple[Pin, ...]
    host: GpuHost
    explanation: tuple[str, ...]
    requirements_file: str | None = None

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {
            "entry": self.entry.name,
            "pins": [{"package": p.package, "spec": p.text, "source": p.source} for p in self.pins],
            "host": {"driver": self.host.driver, "capabilities": list(self.host.capabilities)},
            "explanation": list(self.explanation),
            "requirements_file": self.requirements_file,
        }


# ----------------------------------------------------------------------------- the host


def detect_host(timeout: float = 20) -> GpuHost:
    """The host's driver and GPUs from nvidia-smi (empty when none)."""
    return gpu_host.detect(timeout)


# ------------------------------------------------------------------------------ choosing


def _version(text: str) -> Version:
    return parse_release(text) or Version("0")


def _python_allowed(pin: Pin, python: str) -> bool:
    # A stack names a minor (3.8); any of its patch releases may satisfy the pin (python=3.8.5,
    # requires-python>=3.7.2).
    return pin.allows(python) or any(pin.allows(f"{python}.{patch}") for patch in range(40))


# The order constraints are applied in; an entry that fails a later one came closer to fitting.
_PIN_ORDER = ("torch", "torchvision", "python", "cuda")
_STAGE_CUDA_OPTION, _STAGE_CPU_ON_GPU, _STAGE_HOST = 4, 5, 6


def _pin_reason(entry: Entry, pin: Pin) -> str | None:
    """Why `entry` breaks `pin`, or None when it keeps it."""
    if not pin.applies(entry.python):
        return None  # the line's marker leaves it out for this Python
    if pin.package == "torch" and not pin.allows(entry.torch):
        return f"torch is outside {pin}"
    if pin.package == "torchvision":
        if not entry.torchvision:
            return f"no torchvision in the entry, and the project needs it ({pin})"
        if not pin.allows(entry.torchvision):
            return f"torchvision is outside {pin}"
    if pin.package == "python" and not _python_allowed(pin, entry.python):
        return f"Python {entry.python} is outside {pin}"
    if pin.package == "cuda":
        if pin.cpu_only and entry.cuda is not None:
            return f"a CUDA entry, and the project is CPU-only ({pin})"
        if not pin.cpu_only and entry.cuda is None:
            return f"a CPU entry, and the project pins CUDA ({pin})"
        if not pin.cpu_only and not pin.allows(entry.cuda):
            return f"CUDA {entry.cuda} is outside {pin}"
    return None


def _pins_reason(entry: Entry, pins: list[Pin]) -> tuple[int, str] | None:
    for pin in pins:
        reason = _pin_reason(entry, pin)
        if reason:
            return _PIN_ORDER.index(pin.package), reason
    return None


def _rejection(
    entry: Entry, pins: list[Pin], host: GpuHost, cuda: str | None, wanted: set[str], facts: Facts
) -> tuple[int, str] | None:
    """(stage, reason) for the first constraint `entry` breaks, or None when it fits."""
    why = _pins_reason(entry, pins)
    if why:
        return why
    if cuda and entry.name not in wanted:
        return _STAGE_CUDA_OPTION, f"--cuda {cuda} asks for another CUDA"
    cpu_pinned = any(p.cpu_only for p in pins)
    if host.has_gpu and entry.cuda is None and not cuda and not cpu_pinned:
        # A GPU host asks for a GPU image; a CPU image is chosen only on request.
        return _STAGE_CPU_ON_GPU, "a CPU entry, and the host has a GPU (--cuda cpu picks one)"
    if host.has_gpu:
        reason = gpu_fit.assess(entry, host, facts).reason()
        if reason:
            return _STAGE_HOST, reason
    return None


def _ranker(curated: set[str]):
    """Newest torch first; then a curated entry (the well-known defaults) before a derived
    stack of the same torch; newest CUDA; runtime before devel; the release's default Python;
    then newer Pythons."""

    def rank(entry: Entry) -> tuple:
        release = fact_tables.torch_release(entry.torch)
        default = stacks.default_python(release, entry.cuda) if release else entry.python
        return (
            _version(entry.torch),
            entry.name in curated,
            _version(entry.cuda or "0"),
            entry.flavour == "runtime",
            entry.python == default,
            _version(entry.python),
        )

    return rank


def _names(entries: list[Entry], n: int = 3) -> str:
    shown = ", ".join(e.name for e in entries[:n])
    return shown + (f" and {len(entries) - n} more" if len(entries) > n else "")


def _grouped(rejected: list[tuple[Entry, int, str]]) -> list[str]:
    """One line per reason, at most three reasons a stage, each naming a few stacks."""
    by_stage: dict[int, dict[str, list[Entry]]] = {}
    for entry, stage, reason in rejected:
        by_stage.setdefault(stage, {}).setdefault(reason, []).append(entry)
    lines = []
    for stage in sorted(by_stage):
        reasons = by_stage[stage]
        for reason, entries in list(reasons.items())[:3]:
            lines.append(f"rejected {_names(entries)}: {reason}")
        if len(reasons) > 3:
            more = [e for entries in list(reasons.values())[3:] for e in entries]
            lines.append(f"rejected {len(more)} more for {len(reasons) - 3} other reasons alike")
    return lines


def _preferred(fitting: list[Entry], pins: list[Pin], host: GpuHost, cuda: str | None) -> Entry:
    """The first of the fitting stacks (best ranked first), or on a host without a GPU the CPU
    build of the same torch, unless the project or --cuda asks for CUDA."""
    newest = _version(fitting[0].torch)
    same_torch = [e for e in fitting if _version(e.torch) == newest]
    cuda_pinned = any(p.package == "cuda" and not p.cpu_only for p in pins)
    if not host.has_gpu and not cuda and not cuda_pinned:
        # No GPU to use: the CPU build of the same torch is smaller and behaves the same.
        return next((e for e in same_torch if e.cuda is None), same_torch[0])
    return same_torch[0]


def choose(
    matrix: Matrix,
    pins: list[Pin],
    host: GpuHost,
    *,
    cuda: str | None = None,
    facts: Facts | None = None,
    space: Sequence[Entry] | None = None,
) -> tuple[Entry, list[str]]:
    """The newest stack that keeps every pin and runs on the host, and why the newer did not.

    `space` is what to choose from: the matrix's entries unless given (init_project gives every
    stack the facts allow).
    """
    if facts is None:
        facts = fact_tables
    if space is None:
        space = matrix.entries
    rank = _ranker({e.name for e in matrix.entries})
    candidates = sorted(space, key=rank, reverse=True)
    wanted = {e.name for e in select(candidates, cuda=cuda)} if cuda else set()
    if cuda and not wanted:
        raise BadInput(f"--cuda {cuda} matches no entry", "see envkit list --all")
    pins = sorted(pins, key=lambda p: _PIN_ORDER.index(p.package))
    rejected: list[tuple[Entry, int, str]] = []
    fitting: list[Entry] = []
    for entry in candidates:
        why = _rejection(entry, pins, host, cuda, wanted, facts)
        if why:
            rejected.append((entry, *why))
        else:
            fitting.append(entry)
    if not fitting:
        raise CheckFailed(
            _no_fit_message(rejected, pins, candidates, host, cuda, facts),
            _no_fit_fix(rejected),
        )
    chosen = _preferred(fitting, pins, host, cuda)
    cuda_pinned = [p for p in pins if p.package == "cuda" and not p.cpu_only]
    position = candidates.index(chosen)
    lines = _grouped([(e, s, r) for e, s, r in rejected if candidates.index(e) < position])
    passed_over = [e for e in fitting if candidates.index(e) < position]
    if passed_over and chosen.cuda is None:
        lines.append(
            f"preferred the CPU stack {chosen.name} (no GPU on this host) over "
            f"{len(passed_over)} CUDA {'stack' if len(passed_over) == 1 else 'stacks'} "
            f"({_names(passed_over)}); pass --cuda to choose a CUDA one"
        )
    if chosen.cuda is not None and not host.has_gpu and cuda_pinned:
        lines.append(
            f"the project pins CUDA ({cuda_pinned[0]}), so a CUDA stack is written although "
            "this host has no NVIDIA GPU: it cannot test the image on a GPU"
        )
    return chosen, lines


def _farthest(rejected: list[tuple[Entry, int, str]]) -> list[str]:
    """Distinct reasons of the entries that came closest to fitting."""
    if not rejected:
        return []
    stage = max(s for _, s, _ in rejected)
    return list(dict.fromkeys(r for _, s, r in rejected if s == stage))


def _pairings(pins: list[Pin]) -> list[str]:
    """The official torch <-> torchvision pairings behind conflicting torch and torchvision pins."""
    torch_pins = [p for p in pins if p.package == "torch"]
    vision_pins = [p for p in pins if p.package == "torchvision"]
    if not torch_pins or not vision_pins:
        return []
    releases = [r for r in fact_tables.torch_releases() if r.torchvision][::-1]
    out = []
    for pin in vision_pins:
        paired = [r for r in releases if pin.allows(r.torchvision)][:2]
        out += [f"torchvision {r.torchvision} pairs with torch {r.torch}" for r in paired]
    for pin in torch_pins:
        paired = [r for r in releases if pin.allows(r.torch)][:2]
        out += [f"torch {r.torch} pairs with torchvision {r.torchvision}" for r in paired]
    return list(dict.fromkeys(out))


def _nearest(
    pins: list[Pin],
    candidates: list[Entry],
    host: GpuHost,
    cuda: str | None,
    facts: Facts,
) -> list[tuple[Pin, Entry]]:
    """For each pin: the best stack that keeps every other pin and runs here, if any."""
    wanted = {e.name for e in select(candidates, cuda=cuda)} if cuda else set()
    out = []
    for dropped in pins:
        others = [p for p in pins if p is not dropped]
        fitting = [e for e in candidates if not _rejection(e, others, host, cuda, wanted, facts)]
        fit = _preferred(fitting, others, host, cuda) if fitting else None
        if fit is not None and all(fit is not e for _, e in out):
            out.append((dropped, fit))
    return out


def _no_fit_message(
    rejected: list[tuple[Entry, int, str]],
    pins: list[Pin],
    candidates: list[Entry],
    host: GpuHost,
    cuda: str | None,
    facts: Facts,
) -> str:
    reasons = _farthest(rejected)
    if not reasons:
        return "no entry fits: the matrix has no entries"
    more = f" (and {len(reasons) - 3} more reasons)" if len(reasons) > 3 else ""
    lines = ["no stack fits: " + "; ".join(reasons[:3]) + more]
    stage = max(s for _, s, _ in rejected)
    if stage < len(_PIN_ORDER) and pins:
        lines.append("the project's pins:")
        lines += list(dict.fromkeys(f"  {pin.source}: {pin.text}" for pin in pins))
        lines += [f"  {line}" for line in _pairings(pins)]
    nearest = _nearest(pins, candidates, host, cuda, facts)
    if nearest:
        lines.append("the nearest stacks that exist:")
        lines += [
            f"  without {pin.text} ({pin.source}): envkit build {entry.name}"
            for pin, entry in nearest[:4]
        ]
    return "\n".join(lines)


def _no_fit_fix(rejected: list[tuple[Entry, int, str]]) -> str:
    stage = max((s for _, s, _ in rejected), default=0)
    if stage == _STAGE_HOST:
        fixes = []
        reasons = " ".join(_farthest(rejected))
        if "driver" in reasons:
            fixes.append("upgrade the NVIDIA driver")
        if "kernels" in reasons or "libraries" in reasons:
            fixes.append("loosen the torch pin to a release built for this GPU")
        return " or ".join(fixes) + "; or pass --cuda cpu for a CPU image"
    if stage == _STAGE_CPU_ON_GPU:
        return "pass --cuda cpu to choose a CPU image on this GPU host"
    if stage == _STAGE_CUDA_OPTION:
        return "change or drop --cuda: the project's pins fit entries with another CUDA"
    return "change the pins named above to a pairing that was published (envkit list --all)"


def init_project(
    directory: str | Path,
    matrix: Matrix,
    host: GpuHost,
    *,
    cuda: str | None = None,
    facts: Facts | None = None,
    requirements: str | Path | None = None,
    space: Sequence[Entry] | None = None,
) -> Choice:
    """Read the project's pins and choose its stack (nothing is written).

    `requirements` names the requirements file of the main chain (default requirements.txt);
    `space` what to choose from (default: every stack the facts allow, envkit.stacks).
    """
    root = Path(directory)
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder", "pass the project folder")
    pins, notes, includes = find_pins(root, requirements)
    # one line a pin as written (torch==1.4.0+cu92 pins both torch and the CUDA)
    explanation = list(dict.fromkeys(f"found {pin}" for pin in pins)) or [
        "found no torch pin: the newest entry that runs here is chosen"
    ]
    explanation += notes
    explanation.append(host.describe())
    if space is None:
        space = stacks.whole_space(matrix.entries)
    entry, why = choose(matrix, pins, host, cuda=cuda, facts=facts, space=space)
    explanation += why
    explanation.append(
        f"chose {entry.name}: torch {entry.torch}, "
        f"torchvision {entry.torchvision or 'none'}, {entry.variant}, "
        f"Python {entry.python}"
    )
    main = Path(requirements) if requirements else Path("requirements.txt")
    main_name = main.name if main.parent == Path(".") else str(main)
    requirements_file = None
    if (root / main).is_file():
        if includes.get(main_name):
            explanation.append(
                f"{main_name} includes other files: set requirements_file "
                "in envkit.yaml to a file that holds them all"
            )
        else:
            requirements_file = main_name
    return Choice(entry, tuple(pins), host, tuple(explanation), requirements_file)


def write_choice(directory: str | Path, choice: Choice, force: bool = False) -> Path:
    """Write envkit.yaml for a choice; refuses to replace an existing one unless `force`."""
    path = Path(directory) / "envkit.yaml"
    project = Project(
        path=str(path), entry=choice.entry.name, requirements_file=choice.requirements_file
    )
    return write_project(directory, project, overwrite=force)
