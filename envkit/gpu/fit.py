"""Can an entry run on a host's GPUs? One `Fit`, computed once, put into words by its callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import facts as _facts_module
from .host import GpuHost, HostGpu


def profile(entry, facts=_facts_module) -> dict:
    """The GPU facts of an entry that `show` prints: the driver floors of its CUDA, its arch list,
    and the newest compute capability its linked-in CUDA libraries run on (None where the entry
    is CPU-only or the fact is not known)."""
    if not entry.cuda:
        return {
            "min_driver": None,
            "min_driver_compat": None,
            "arch_list": None,
            "libraries_max_capability": None,
        }
    arch = facts.arch_list(entry.torch, entry.cuda)
    return {
        # The toolkit's own driver, and the oldest that still runs it (minor-version
        # compatibility, CUDA 11+).
        "min_driver": facts.min_driver_for(entry.cuda),
        "min_driver_compat": facts.min_driver_compat_for(entry.cuda),
        "arch_list": list(arch) if arch else None,
        # The wheel links its CUDA libraries in; they run on GPUs up to this capability only,
        # whatever PTX the arch list has (None: not linked in).
        "libraries_max_capability": facts.library_limit(entry.torch, entry.cuda),
    }


# Verdicts on the driver, for a CUDA entry on a host:
NO_DRIVER = "no_driver"  # no NVIDIA driver: the GPU part cannot work
MINIMUM_UNKNOWN = "minimum_unknown"  # the CUDA's driver floor is not in the tables
TOO_OLD = "too_old"  # below even the minor-version compatibility floor
JIT_BLOCKED = "jit_blocked"  # runs prebuilt code, but GPUs only PTX covers need a newer driver
COMPAT = "compat"  # older than the toolkit's own driver, runs through minor-version compat
DRIVER_OK = "ok"
# Verdicts on the GPUs' architectures:
NO_GPU = "no_gpu"  # nothing to compare the arch list with
ARCH_UNKNOWN = "unknown"  # the build's arch list is not in the tables
UNCOVERED = "uncovered"  # some GPU has no kernels, or is past the linked-in libraries
CAPABILITY_UNKNOWN = "capability_unknown"  # the others are covered; some GPU's is not known
PTX_ONLY = "ptx_only"  # covered, but some GPU only through PTX the driver compiles at first use
NATIVE = "native"  # machine code for every GPU
CPU_ENTRY = "cpu_entry"  # both verdicts of an entry without CUDA

_FAILING_DRIVER = (NO_DRIVER, TOO_OLD, JIT_BLOCKED)


@dataclass(frozen=True)
class Fit:
    """Can `entry` use the GPUs of `host`, and if not, why: computed once by `assess`."""

    entry: Any
    host: GpuHost
    driver: str  # one of the driver verdicts above
    arch: str  # one of the arch verdicts above
    min_driver: str | None = None  # the CUDA toolkit's own driver
    min_driver_to_run: str | None = None  # the oldest that runs it (minor-version compat)
    arch_list: tuple[str, ...] | None = None
    library_limit: str | None = None  # newest capability the linked-in libraries run on
    no_kernels: tuple[HostGpu, ...] = ()  # neither machine code nor PTX for them
    old_libraries: tuple[HostGpu, ...] = ()  # torch covers them; its linked libraries do not
    ptx_only: tuple[HostGpu, ...] = ()  # only PTX covers them, which the driver JIT-compiles
    unknown_capability: tuple[HostGpu, ...] = ()

    @property
    def uncovered(self) -> tuple[HostGpu, ...]:
        """The GPUs this build cannot run on."""
        return self.no_kernels + self.old_libraries

    @property
    def fails(self) -> bool:
        """The entry cannot use this host's GPUs (for a CPU entry: never)."""
        return self.driver in _FAILING_DRIVER or self.arch == UNCOVERED

    @property
    def known_to_work(self) -> bool:
        """Everything needed is known and fits: what an entry offered instead must be.

        On a host without a GPU or driver only CPU entries do; on a GPU host only CUDA ones."""
        if not self.host.gpus or self.host.driver is None:
            return self.entry.cuda is None
        if self.entry.cuda is None:
            return False
        return self.driver in (DRIVER_OK, COMPAT) and self.arch in (
            NATIVE,
            PTX_ONLY,
            CAPABILITY_UNKNOWN,
        )

    def reason(self) -> str | None:
        """Why the entry cannot use this host's GPUs, in one line; None when it can."""
        entry = self.entry
        if self.driver == NO_DRIVER:
            return f"CUDA {entry.cuda} needs an NVIDIA driver; this host has none"
        if self.driver == TOO_OLD:
            return (
                f"CUDA {entry.cuda} needs NVIDIA driver >= {self.min_driver_to_run}; "
                f"the host's driver is {self.host.driver}"
            )
        if self.driver == JIT_BLOCKED:
            return (
                f"torch {entry.torch} + CUDA {entry.cuda} has only PTX for compute capability "
                f"{_caps(self.ptx_only)}, which driver {self.host.driver} cannot compile "
                f"(CUDA {entry.cuda} needs >= {self.min_driver} for that)"
            )
        if self.no_kernels:
            return (
                f"torch {entry.torch} + CUDA {entry.cuda} has no kernels for the host's "
                f"compute capability {_caps(self.no_kernels)} "
                f"(built for {' '.join(self.arch_list or ())})"
            )
        if self.old_libraries:
            return (
                f"torch {entry.torch} + CUDA {entry.cuda} links in CUDA libraries (cuBLAS, "
                f"cuDNN) that stop at compute capability {self.library_limit}; the host has "
                f"{_caps(self.old_libraries)}"
            )
        return None


def _caps(gpus: Sequence[HostGpu]) -> str:
    return ", ".join(sorted({g.capability for g in gpus}, key=facts_numbers))


def facts_numbers(text: str) -> tuple[int, ...]:
    """Sort key for dotted numbers ("8.6" before "12.0")."""
    return _facts_module.version_numbers(text)


def assess(entry, host: GpuHost, facts=_facts_module) -> Fit:
    """The one answer to "can this entry use these GPUs with this driver?".

    `facts` is envkit.facts, or anything with its min_driver_for, min_driver_to_run, arch_list,
    kernel_supports, library_limit and beyond_libraries.
    """
    if entry.cuda is None:
        return Fit(entry, host, CPU_ENTRY, CPU_ENTRY)
    numbers = _facts_module.version_numbers
    minimum = facts.min_driver_for(entry.cuda)
    floor = facts.min_driver_to_run(entry.cuda)
    arches = facts.arch_list(entry.torch, entry.cuda)
    known = [g for g in host.gpus if g.capability]

    def beyond(gpu: HostGpu) -> bool:
        return facts.beyond_libraries(entry.torch, entry.cuda, gpu.capability)

    no_kernels: tuple[HostGpu, ...] = ()
    old_libraries: tuple[HostGpu, ...] = ()
    ptx_only: tuple[HostGpu, ...] = ()
    if arches is not None:
        machine_code = [a for a in arches if a.startswith("sm_")]
        no_kernels = tuple(g for g in known if not facts.kernel_supports(arches, g.capability))
        old_libraries = tuple(g for g in known if g not in no_kernels and beyond(g))
        ptx_only = tuple(
            g
            for g in known
            if g not in no_kernels + old_libraries
            and not facts.kernel_supports(machine_code, g.capability)
        )

    driver = host.driver
    if driver is None:
        driver_verdict = NO_DRIVER
    elif minimum is None or floor is None:
        driver_verdict = MINIMUM_UNKNOWN
    elif numbers(driver) < numbers(floor):
        driver_verdict = TOO_OLD
    elif numbers(driver) < numbers(minimum):
        # Minor-version compatibility runs prebuilt machine code but cannot JIT newer PTX.
        driver_verdict = JIT_BLOCKED if ptx_only else COMPAT
    else:
        driver_verdict = DRIVER_OK

    if not host.gpus:
        arch_verdict = NO_GPU
    elif arches is None:
        arch_verdict = ARCH_UNKNOWN
    elif no_kernels or old_libraries:
        arch_verdict = UNCOVERED
    elif len(known) < len(host.gpus):
        arch_verdict = CAPABILITY_UNKNOWN
    elif ptx_only:
        arch_verdict = PTX_ONLY
    else:
        arch_verdict = NATIVE
    return Fit(
        entry,
        host,
        driver_verdict,
        arch_verdict,
        min_driver=minimum,
        min_driver_to_run=floor,
        arch_list=tuple(arches) if arches is not None else None,
        library_limit=facts.library_limit(entry.torch, entry.cuda) if old_libraries else None,
        no_kernels=no_kernels,
        old_libraries=old_libraries,
        ptx_only=ptx_only,
        unknown_capability=tuple(g for g in host.gpus if not g.capability),
    )


def alternatives(entry, host: GpuHost, all_entries, facts=_facts_module, limit: int = 3) -> list:
    """Up to `limit` entries known to work on this host, closest in torch version first: the
    same major.minor, then the nearest newer release; older ones only when nothing else."""
    wanted = _facts_module.parse_release(entry.torch)
    if wanted is None:
        return []
    ranked = []
    for candidate in all_entries:
        have = _facts_module.parse_release(candidate.torch)
        if candidate.name == entry.name or have is None:
            continue
        if not assess(candidate, host, facts).known_to_work:
            continue
        same = (have.major, have.minor) == (wanted.major, wanted.minor)
        group = 0 if same else (1 if have > wanted else 2)
        distance = have.release if group < 2 else tuple(-p for p in have.release)
        cuda_gap = (
            abs(_cuda_number(candidate.cuda) - _cuda_number(entry.cuda))
            if candidate.cuda and entry.cuda
            else 0
        )
        ranked.append(
            (
                group,
                distance,
                candidate.python != entry.python,
                candidate.flavour != entry.flavour,
                cuda_gap,
                candidate.name,
                candidate,
            )
        )
    ranked.sort(key=lambda r: r[:-1])
    if any(r[0] < 2 for r in ranked):
        ranked = [r for r in ranked if r[0] < 2]
    return [r[-1] for r in ranked[:limit]]


def _cuda_number(cuda: str) -> float:
    major, _, minor = cuda.partition(".")
    return int(major) + int(minor or 0) / 100


def kernel_failure_cause(
    entry, ran_torch: str | None, arches, capability: str, facts=_facts_module
):
    """Why real kernels failed on a GPU of `capability`, as far as the facts tell: "no_kernels"
    when the arch list the probe reported lacks it, "old_libraries" when the entry's linked-in
    CUDA libraries stop before it (only if the torch that ran is the entry's), else None."""
    if arches and capability != "?" and not facts.kernel_supports(arches, capability):
        return "no_kernels"
    if entry is None or not entry.cuda or not capability or capability == "?":
        return None
    ran = _facts_module.parse_release(ran_torch or "")
    if ran is None or ran != _facts_module.parse_release(entry.torch):
        return None
    return "old_libraries" if facts.beyond_libraries(entry.torch, entry.cuda, capability) else None
