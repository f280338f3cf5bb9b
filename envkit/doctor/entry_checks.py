"""Entry checks: before anything runs, is the host's driver new enough for the entry's CUDA, and
does its build cover the GPUs? They only put a `Fit` (envkit.gpu.fit) into words."""

from __future__ import annotations

from dataclasses import replace

from ..gpu import fit as gpu_fit
from ..gpu.host import GpuHost, HostGpu, sm_name, sm_names
from .finding import Check


def static_checks(entry, gpus: list[HostGpu], driver: str | None, all_entries) -> list[Check]:
    """The driver and arch checks for `entry` on this host, with entries that would work
    instead in the fix of a failing one."""
    return fit_checks(gpu_fit.assess(entry, GpuHost(tuple(gpus), driver)), all_entries)


def fit_checks(fit: gpu_fit.Fit, all_entries) -> list[Check]:
    """A Fit as the report's driver-for-cuda and arch rows."""
    entry = fit.entry
    if entry.cuda is None:
        return [
            Check("driver-for-cuda", "skip", f"{entry.name} is CPU-only: no driver needed"),
            Check("arch", "skip", f"{entry.name} is CPU-only: no GPU kernels"),
        ]
    checks = [_driver_check(fit), _arch_check(fit)]
    if fit.fails:
        suggestions = gpu_fit.alternatives(entry, fit.host, all_entries)
        checks = [_with_suggestions(c, suggestions) for c in checks]
    return checks


def _label(entry) -> str:
    return f"torch {entry.torch}+cu{entry.cuda.replace('.', '')}"


def _driver_check(fit: gpu_fit.Fit) -> Check:
    entry, driver = fit.entry, fit.host.driver
    minimum, floor = fit.min_driver, fit.min_driver_to_run
    if fit.driver == gpu_fit.NO_DRIVER:
        return Check(
            "driver-for-cuda",
            "fail",
            f"{entry.name} needs CUDA {entry.cuda} (driver >= {minimum or '?'}), but this host "
            "has no NVIDIA driver: its GPU part cannot work here",
            "run it on a host with an NVIDIA GPU and driver",
        )
    if fit.driver == gpu_fit.MINIMUM_UNKNOWN:
        return Check(
            "driver-for-cuda",
            "warn",
            f"minimum driver for CUDA {entry.cuda} is not known; host driver is {driver}",
            "the container checks (`envkit doctor NAME` with the image built) will tell",
        )
    if fit.driver == gpu_fit.TOO_OLD:
        below = (
            f"{floor}, the oldest that runs CUDA {entry.cuda} through minor-version compatibility"
            if floor != minimum
            else f"{minimum}, the minimum for CUDA {entry.cuda}"
        )
        return Check(
            "driver-for-cuda",
            "fail",
            f"host driver {driver} is older than {below}: "
            "expect 'CUDA driver version is insufficient for CUDA runtime version'",
            f"upgrade the NVIDIA driver to >= {minimum}",
        )
    if fit.driver == gpu_fit.JIT_BLOCKED:
        names = ", ".join(f"GPU {g.index} ({sm_name(g.capability)})" for g in fit.ptx_only)
        return Check(
            "driver-for-cuda",
            "fail",
            f"host driver {driver} is older than {minimum}, CUDA {entry.cuda}'s own driver: "
            f"minor-version compatibility runs prebuilt machine code but cannot JIT-compile "
            f"CUDA {entry.cuda}'s PTX, and {_label(entry)} has only PTX for {names}",
            f"upgrade the NVIDIA driver to >= {minimum}",
        )
    if fit.driver == gpu_fit.COMPAT:
        return Check(
            "driver-for-cuda",
            "warn",
            f"host driver {driver} is older than {minimum}, CUDA {entry.cuda}'s own driver, but "
            f"runs it through minor-version compatibility (>= {floor}): "
            f"prebuilt kernels work; code compiled at run time by CUDA {entry.cuda}'s compiler "
            "(nvrtc-generated kernels, CUDA extensions built in the image) may fail with 'the "
            "provided PTX was compiled with an unsupported toolchain'",
            f"upgrade the NVIDIA driver to >= {minimum} for full CUDA {entry.cuda} support",
        )
    return Check(
        "driver-for-cuda",
        "pass",
        f"host driver {driver} >= {minimum}, the minimum for CUDA {entry.cuda}",
    )


def _gpu_names(gpus) -> str:
    return ", ".join(f"GPU {g.index} {g.name} ({sm_name(g.capability)})" for g in gpus)


def _arch_check(fit: gpu_fit.Fit) -> Check:
    entry, label, arches = fit.entry, _label(fit.entry), fit.arch_list
    if fit.arch == gpu_fit.NO_GPU:
        return Check("arch", "skip", "no GPU on this host to compare with the arch list")
    if fit.arch == gpu_fit.ARCH_UNKNOWN:
        return Check(
            "arch",
            "warn",
            f"the arch list of {label} is not known: cannot predict kernel support",
            "the container checks run a real kernel on every GPU: build the image and run "
            f"`envkit doctor {entry.name}`",
        )
    if fit.arch == gpu_fit.UNCOVERED:
        return _uncovered_check(fit)
    if fit.arch == gpu_fit.CAPABILITY_UNKNOWN:
        return Check(
            "arch",
            "warn",
            "compute capability unknown for GPU "
            + ", ".join(str(g.index) for g in fit.unknown_capability)
            + f"; the others are covered by {label}",
            "upgrade the driver so nvidia-smi reports compute_cap",
        )
    if fit.arch == gpu_fit.PTX_ONLY:
        caps = sm_names(fit.ptx_only)
        ptx = " ".join(a for a in arches if a.startswith("compute_"))
        return Check(
            "arch",
            "warn",
            f"{label} has no native kernels for {caps}: only its PTX ({ptx}) covers them, "
            "which the driver JIT-compiles at first use (slow start-up); libraries bundled "
            "without PTX for this GPU (older cuDNN) can still fail with 'no kernel image is "
            "available for execution on the device'",
            f"prefer an entry whose arch list has {caps}",
        )
    return Check("arch", "pass", f"{label} has native kernels for {sm_names(fit.host.gpus)}")


def _uncovered_check(fit: gpu_fit.Fit) -> Check:
    """Why each uncovered GPU cannot run the build: torch's kernels, or its linked libraries."""
    entry, label, arches = fit.entry, _label(fit.entry), fit.arch_list
    parts = []
    if fit.no_kernels:
        parts.append(
            f"{label} has no kernels for {_gpu_names(fit.no_kernels)} (its arch list: "
            f"{' '.join(arches)}): expect 'no kernel image is available for execution on the "
            "device'"
        )
    if fit.old_libraries:
        ptx = " ".join(a for a in arches if a.startswith("compute_"))
        parts.append(
            f"{label} links in CUDA {entry.cuda}'s cuBLAS, cuDNN and cuFFT, which have machine "
            f"code only up to {sm_name(fit.library_limit)} and no PTX, so "
            f"{_gpu_names(fit.old_libraries)} cannot run its matrix multiplies or convolutions"
            + (f" (torch's own PTX, {ptx}, does not help them)" if ptx else "")
            + ": expect 'CUBLAS_STATUS_EXECUTION_FAILED' or 'no kernel image is available for "
            "execution on the device'"
        )
    needs = "arch list covers" if fit.no_kernels else "CUDA libraries know"
    return Check(
        "arch",
        "fail",
        "; ".join(parts),
        f"use a newer torch/CUDA build whose {needs} {sm_names(fit.uncovered)}",
    )


def describe(entry) -> str:
    """'NAME (torch X, CUDA Y, Python Z)', as a suggestion names an entry."""
    cuda = f"CUDA {entry.cuda}" if entry.cuda else "CPU-only"
    return f"{entry.name} (torch {entry.torch}, {cuda}, Python {entry.python})"


def _with_suggestions(check: Check, suggestions: list) -> Check:
    if check.status != "fail" or not suggestions:
        return check
    names = ", ".join(describe(e) for e in suggestions)
    return replace(check, fix=f"{check.fix}; or use {names}" if check.fix else f"use {names}")
