"""Can an entry run on a host's GPUs? One `Fit`, computed once, put into words by its callers."""

from __future__ import annotations

from .. import facts as _facts_module


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
