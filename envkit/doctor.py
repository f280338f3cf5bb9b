"""`envkit doctor`: can this host run GPU containers, and does an entry's image really work here?

Raw facts (docker info, nvidia-smi, /dev/shm, the probe's JSON) go through pure functions that
return Checks, so every rule is testable from recorded inputs; only the gatherers and
`run_doctor` touch the host or the engine. No torch import here: the probe does that, in its
own process.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import inside
from .engine import is_rootless
from .errors import ContainerStartFailed, EnvkitError, ProgramTimedOut

STATUSES = ("pass", "warn", "fail", "skip")
# Checks that only fail for want of a GPU; --allow-cpu turns those failures into warnings.
_GPU_ONLY_CHECKS = ("cuda", "gpu-attach")
PROBE_PATH = inside.PROBE
GIB = 1024**3
# DataLoader workers pass every batch through /dev/shm; Docker's default 64 MiB runs out fast.
MIN_SHM_BYTES = GIB
NVIDIA_SMI_FIELDS = (
    "index",
    "name",
    "memory.total",
    "compute_cap",
    "driver_version",
    "mig.mode.current",
)
NVIDIA_SMI_MISSING = "nvidia-smi: command not found"
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
# Any of these on PATH means Docker's --gpus can hand GPUs to containers.
TOOLKIT_BINARIES = (
    "nvidia-container-runtime-hook",
    "nvidia-container-toolkit",
    "nvidia-container-runtime",
    "nvidia-ctk",
)
TOOLKIT_FIX = (
    "install the NVIDIA Container Toolkit (package nvidia-container-toolkit), then run "
    "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: a status, a one-line detail, and the fix if not pass."""

    id: str
    status: str
    detail: str
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.id}: status {self.status!r} is not one of {STATUSES}")

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {"id": self.id, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class HostGpu:
    """One GPU as nvidia-smi reports it on the host."""

    index: int
    name: str
    memory_mib: int | None
    capability: str | None  # "9.0"
    driver: str | None  # "550.54.15"
    mig: str | None  # "Enabled", "Disabled", or None when the GPU has no MIG

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {
            "index": self.index,
            "name": self.name,
            "memory_mib": self.memory_mib,
            "capability": self.capability,
            "driver": self.driver,
            "mig": self.mig,
        }


@dataclass(frozen=True)
class HostFacts:
    """Everything the host checks read, gathered in one place so the rules stay pure."""

    nvidia_smi_output: str | None
    nvidia_smi_error: str | None
    shm_bytes: int | None
    cdi_files: list[str]
    toolkit: list[str]
    proc_driver_text: str | None


@dataclass
class DoctorReport:
    """The doctor's verdict: ok when no check failed."""

    ok: bool
    checks: list[Check]
    entry: str | None = None
    image: str | None = None
    gpus: list[HostGpu] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    probe: dict | None = None

    def to_dict(self) -> dict:
        """Plain data: ok, checks, and what they were computed from."""
        return {
            "ok": self.ok,
            "entry": self.entry,
            "image": self.image,
            "checks": [c.to_dict() for c in self.checks],
            "suggestions": list(self.suggestions),
            "host_gpus": [g.to_dict() for g in self.gpus],
            "probe": self.probe,
        }

    def to_json(self) -> str:
        """The --json document."""
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Human report: one row per check, the fix under each non-pass row, then a summary."""
        width = max([len(c.id) for c in self.checks] + [5])
        lines = []
        for check in self.checks:
            lines.append(f"{check.status:<4}  {check.id:<{width}}  {check.detail}")
            if check.status != "pass" and check.fix:
                lines.append(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
        counts = {s: sum(c.status == s for c in self.checks) for s in STATUSES}
        summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        verdict = "ok" if self.ok else "FAILED"
        lines.append(f"doctor: {verdict} ({summary or 'no checks'})")
        return "\n".join(lines)


def _facts():
    from . import facts  # lazy: the facts tables are only needed once an entry is checked

    return facts


# --------------------------------------------------------------------------- error texts

# (pattern, detail, fix). Details explain the cause in words; the matched text is kept in the
# check's detail by the callers, so the user still sees what the tool said.
_KNOWN_ERRORS: tuple[tuple[re.Pattern, str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), detail, fix)
    for pattern, detail, fix in (
        (
            r'could not select device driver "[^"]*" with capabilities: \[\[gpu\]\]',
            "Docker has no GPU device driver: the NVIDIA Container Toolkit is not installed, "
            "or dockerd was not restarted after installing it",
            TOOLKIT_FIX,
        ),
        # Before the toolkit's generic initialisation error, which can wrap this one
        # ("nvidia-container-cli: initialization error: nvml error: driver/library version
        # mismatch").
        (
            r"Driver/library version mismatch",
            "the loaded NVIDIA kernel module and the user-space driver libraries are different "
            "versions (the driver was upgraded without a reboot)",
            "reboot the host, or unload and reload the nvidia kernel modules",
        ),
        # The toolkit checks an image's NVIDIA_REQUIRE_CUDA (set by nvidia/cuda bases) against
        # the driver before the container starts.
        (
            r"requirement error: unsatisfied condition: cuda\s*>=",
            "the host's NVIDIA driver is older than the CUDA version the image declares "
            "(NVIDIA_REQUIRE_CUDA): the NVIDIA Container Toolkit refused to start it",
            "upgrade the host's NVIDIA driver, or use an entry with an older CUDA "
            "(`envkit doctor NAME` names the ones this driver supports)",
        ),
        (
            r"nvidia-container-cli: initialization error",
            "the NVIDIA container runtime could not initialise the driver on the host "
            "(driver not loaded or not installed, or rootless Docker without no-cgroups)",
            "check that `nvidia-smi` works on the host (reboot after a driver install); for "
            "rootless Docker set `no-cgroups = true` in /etc/nvidia-container-runtime/config.toml",
        ),
        (
            r"CUDA driver version is insufficient for CUDA runtime version"
            r"|driver on your system is too old",
            "the host's NVIDIA driver is older than the CUDA runtime in the image needs",
            "upgrade the host's NVIDIA driver, or use an entry with an older CUDA "
            "(`envkit doctor NAME` names the ones this driver supports)",
        ),
        (
            r"no kernel image is available for execution on the device",
            "this torch build has no kernels compiled for the GPU's compute capability",
            "use an entry whose torch build lists the GPU's sm_XY in its arch list (newer torch "
            "and CUDA; `envkit doctor NAME` names them)",
        ),
        (
            r"unknown or invalid runtime name: nvidia|Unknown runtime specified nvidia",
            "dockerd has no runtime named nvidia registered",
            "register it with `sudo nvidia-ctk runtime configure --runtime=docker && sudo "
            "systemctl restart docker`, or request GPUs with --gpus instead of --runtime=nvidia",
        ),
        (
            r"permission denied.*docker\.sock|docker\.sock.*permission denied"
            r"|permission denied on the Docker socket",
            "this user may not use the Docker socket",
            "add the user to the docker group (`sudo usermod -aG docker $USER`, then log in "
            "again), or use rootless Docker (DOCKER_HOST=unix://$XDG_RUNTIME_DIR/docker.sock)",
        ),
        (
            r"Cannot connect to the Docker daemon|no Docker daemon is answering",
            "no Docker daemon is answering",
            "start it (`sudo systemctl start docker`; rootless: `systemctl --user start "
            "docker`), or point DOCKER_HOST at a running engine",
        ),
        (
            r"unable to allocate shared memory|out of shared memory|Bus error",
            "DataLoader workers ran out of shared memory (/dev/shm)",
            "give the container more shared memory: --shm-size=8g (or --ipc=host)",
        ),
        (
            r"Found no NVIDIA driver on your system",
            "torch found no NVIDIA driver library (libcuda) in its environment",
            "run the container with GPUs on a host with the NVIDIA driver and the NVIDIA "
            "Container Toolkit (`--gpus all`)",
        ),
        (
            r"No CUDA GPUs are available|invalid device ordinal",
            "CUDA sees no GPU: CUDA_VISIBLE_DEVICES hides them or names a missing one, or a "
            "MIG-enabled GPU has no MIG instances",
            "unset CUDA_VISIBLE_DEVICES, or set it to indices of GPUs given to the container; "
            "on a MIG-enabled GPU (`nvidia-smi -L` lists no MIG devices) create instances "
            "(`sudo nvidia-smi mig -cgi PROFILE -C`) or turn MIG off "
            "(`sudo nvidia-smi -i N -mig 0`)",
        ),
    )
)


def explain_error(text: str) -> tuple[str, str] | None:
    """(detail, fix) for a known error text from docker, nvidia or torch; None if unknown."""
    if not text:
        return None
    for pattern, detail, fix in _KNOWN_ERRORS:
        if pattern.search(text):
            return detail, fix
    return None


def _explained(explanation: str, text: str) -> str:
    """'explanation: text', unless the text already says it."""
    return text if explanation.lower() in text.lower() else f"{explanation}: {text}"


# Lines torch appends under every CUDA error message: true, but never the cause.
_BOILERPLATE = re.compile(
    r"CUDA kernel errors might be asynchronously reported|consider passing CUDA_LAUNCH_BLOCKING"
    r"|Compile with `?TORCH_USE_CUDA_DSA|Device-side assertion tracking was not enabled"
    r"|^Search for `cuda\w+' in https://docs\.nvidia\.com"
)


def _last_line(text: str) -> str:
    """The last non-empty line that is not torch's CUDA boilerplate: where a Python error's
    message sits under its traceback."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    telling = [line for line in lines if not _BOILERPLATE.search(line)]
    return (telling or lines or [""])[-1]


# ------------------------------------------------------------------------------ host checks


def _cells(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.startswith("[") or value == "N/A" else value


def parse_nvidia_smi(csv_text: str) -> list[HostGpu]:
    """GPUs from `nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`."""
    gpus = []
    for row in csv.reader(csv_text.splitlines(), skipinitialspace=True):
        if len(row) != len(NVIDIA_SMI_FIELDS) or not row[0].strip().isdigit():
            continue  # "No devices were found" and other chatter
        index, name, memory, capability, driver, mig = (c.strip() for c in row)
        memory_cell = _cells(memory)
        gpus.append(
            HostGpu(
                index=int(index),
                name=name,
                memory_mib=int(float(memory_cell)) if memory_cell else None,
                capability=_cells(capability) or _known_capability(name),
                driver=_cells(driver),
                mig=_cells(mig),
            )
        )
    return gpus


def _known_capability(name: str) -> str | None:
    """Compute capability from the GPU's model name, for drivers whose nvidia-smi lacks it."""
    try:
        model = _facts().gpu_model_for(name)
    except ImportError:
        return None
    return getattr(model, "capability", None) if model is not None else None


def parse_proc_driver(text: str | None) -> str | None:
    """Driver version from /proc/driver/nvidia/version ('... Kernel Module  550.54.15  ...')."""
    if not text:
        return None
    match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _human(nbytes: int) -> str:
    if nbytes >= GIB:
        return f"{nbytes / GIB:.1f} GiB"
    return f"{nbytes / 1024**2:.0f} MiB"


def _engine_check(engine_info: dict | Exception | None) -> Check:
    if engine_info is None:
        return Check("engine", "skip", "Docker not used (--host or --static)")
    if isinstance(engine_info, Exception):
        message = getattr(engine_info, "message", None) or str(engine_info)
        explained = explain_error(message)
        fix = getattr(engine_info, "fix", None)
        if explained:  # envkit's own fix knows the address it tried; the table's is generic
            return Check("engine", "fail", _explained(explained[0], message), fix or explained[1])
        return Check(
            "engine", "fail", f"Docker engine unreachable: {message}", fix or "check dockerd"
        )
    version = engine_info.get("ServerVersion") or "?"
    system = engine_info.get("OperatingSystem") or "unknown OS"
    rootless = is_rootless(engine_info)
    detail = f"Docker {version} on {system}" + (" (rootless)" if rootless else "")
    return Check("engine", "pass", detail)


def _is_desktop_vm(engine_info: dict) -> bool:
    # Docker Desktop's Linux VM (kernel "linuxkit") has no GPU; its WSL2 backend on Windows does.
    return (
        "Docker Desktop" in (engine_info.get("OperatingSystem") or "")
        and "microsoft" not in (engine_info.get("KernelVersion") or "").lower()
    )


def _runtime_check(
    engine_info: dict | Exception | None,
    host_has_gpu: bool,
    cdi_files: Sequence[str],
    toolkit: Sequence[str],
) -> Check:
    if engine_info is None:
        return Check("gpu-runtime", "skip", "Docker not used (--host or --static)")
    if not isinstance(engine_info, dict):
        return Check("gpu-runtime", "skip", "no Docker engine to check (see engine)")
    if _is_desktop_vm(engine_info):
        vm = (
            "Docker Desktop runs containers in a VM with no GPU access (OperatingSystem: "
            f"{engine_info.get('OperatingSystem')})"
        )
        if not host_has_gpu:  # a Mac, or a PC without an NVIDIA GPU: CPU entries are fine
            return Check("gpu-runtime", "skip", f"no NVIDIA GPU on this host; {vm}")
        return Check(
            "gpu-runtime",
            "fail",
            vm,
            "use Docker Engine (docker-ce or docker.io) with the NVIDIA Container Toolkit "
            "(`docker context use default`), or --host to probe this machine's own Python",
        )
    runtimes = sorted(engine_info.get("Runtimes") or {})
    ways = []
    if any("nvidia" in r for r in runtimes):
        ways.append("nvidia runtime registered")
    nvidia_cdi = [f for f in cdi_files if "nvidia" in os.path.basename(f).lower()]
    if nvidia_cdi:
        ways.append("CDI spec " + ", ".join(nvidia_cdi))
    if toolkit:
        ways.append("toolkit " + ", ".join(os.path.basename(t) for t in toolkit))
    if ways:
        if not host_has_gpu:
            return Check(
                "gpu-runtime",
                "pass",
                f"GPU runtime present ({'; '.join(ways)}), but no NVIDIA GPU on this host",
            )
        if is_rootless(engine_info):
            return Check(
                "gpu-runtime",
                "warn",
                f"rootless Docker with a GPU runtime ({'; '.join(ways)}): GPU containers "
                "fail unless the toolkit skips cgroups",
                "set `no-cgroups = true` in /etc/nvidia-container-runtime/config.toml "
                "(`sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place`)",
            )
        return Check("gpu-runtime", "pass", "; ".join(ways))
    searched = (
        f"no nvidia runtime in docker info (runtimes: {', '.join(runtimes) or 'none'}), "
        f"no CDI spec in {' or '.join(CDI_DIRS)}, no nvidia-container-toolkit on PATH"
    )
    if not host_has_gpu:
        return Check("gpu-runtime", "skip", f"no NVIDIA GPU on this host ({searched})")
    return Check("gpu-runtime", "fail", f"Docker cannot attach GPUs: {searched}", TOOLKIT_FIX)


def _driver_check(
    gpus: list[HostGpu],
    nvidia_smi_output: str | None,
    nvidia_smi_error: str | None,
    proc_driver: str | None,
) -> Check:
    smi_driver = gpus[0].driver if gpus else None
    if nvidia_smi_error and not gpus:
        explained = explain_error(nvidia_smi_error)
        if explained:
            return Check(
                "driver",
                "fail",
                # nvidia-smi's message is a line or two, the cause first: keep all of it
                _explained(
                    explained[0],
                    "; ".join(
                        line.strip() for line in nvidia_smi_error.splitlines() if line.strip()
                    ),
                ),
                explained[1],
            )
        if nvidia_smi_error == NVIDIA_SMI_MISSING or "not found" in nvidia_smi_error.lower():
            if proc_driver:
                return Check(
                    "driver",
                    "warn",
                    f"NVIDIA driver {proc_driver} loaded (/proc/driver/nvidia/version), "
                    "but nvidia-smi is missing: GPUs cannot be listed",
                    "install the nvidia-smi utility of the same driver version "
                    "(e.g. nvidia-utils-<branch>)",
                )
            return Check(
                "driver",
                "warn",
                "no NVIDIA driver (nvidia-smi not found, no /proc/driver/nvidia/version): "
                "only CPU-only entries can run here",
                "if this host has an NVIDIA GPU, install the NVIDIA driver and reboot",
            )
        return Check(
            "driver",
            "fail",
            f"nvidia-smi failed: {_last_line(nvidia_smi_error)}",
            "check that the nvidia kernel module is loaded (`sudo modprobe nvidia`, "
            "`dmesg | grep -i nvrm`); reinstall the driver and reboot if it is not",
        )
    if smi_driver and proc_driver and smi_driver != proc_driver:
        detail, fix = explain_error("Driver/library version mismatch")
        return Check(
            "driver",
            "fail",
            f"{detail}: kernel module {proc_driver}, nvidia-smi reports {smi_driver}",
            fix,
        )
    if nvidia_smi_error:
        return Check(
            "driver",
            "fail",
            f"nvidia-smi listed {len(gpus)} GPU(s), then failed on another: "
            f"{_last_line(nvidia_smi_error)}",
            "a GPU is in a bad state or fell off the bus: look for Xid errors (`sudo dmesg | "
            "grep -i xid`), reset it (`sudo nvidia-smi -r -i N`) or reboot",
        )
    if not gpus:
        if nvidia_smi_output is not None:
            return Check(
                "driver",
                "warn",
                f"NVIDIA driver {proc_driver or 'loaded'}, but nvidia-smi lists no GPU: "
                f"{_last_line(nvidia_smi_output) or 'empty output'}",
                "check the GPU is seated and powered (`lspci | grep -i nvidia`, `dmesg`)",
            )
        return Check(
            "driver",
            "warn",
            "no NVIDIA driver answered: only CPU-only entries can run here",
            "if this host has an NVIDIA GPU, install the NVIDIA driver and reboot",
        )
    return Check("driver", "pass", f"NVIDIA driver {smi_driver or proc_driver}")


def _sm(capability: str) -> str:
    """The name CUDA and torch's arch lists use for a compute capability: 8.6 -> sm_86."""
    return "sm_" + capability.replace(".", "")


def _sms(gpus: Sequence[HostGpu]) -> str:
    """The distinct sm_XY names of `gpus`, sorted, comma-separated."""
    return ", ".join(sorted({_sm(g.capability) for g in gpus}))


def _gpu_check(gpu: HostGpu) -> Check:
    memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "memory unknown"
    sm = _sm(gpu.capability) if gpu.capability else "sm_?"
    mig = {"Enabled": "MIG on", "Disabled": "MIG off"}.get(gpu.mig or "", "no MIG")
    detail = f"{gpu.name}, {memory}, compute capability {gpu.capability or '?'} ({sm}), {mig}"
    check_id = f"gpu{gpu.index}"
    if gpu.mig == "Enabled":
        return Check(
            check_id,
            "warn",
            detail + ": a container sees MIG slices, not the whole GPU",
            f"request a MIG device explicitly (--gpus '\"device={gpu.index}:0\"'), or turn "
            f"MIG off: `sudo nvidia-smi -i {gpu.index} -mig 0` and reset the GPU",
        )
    if not gpu.capability:
        return Check(
            check_id,
            "warn",
            detail + ": the compute capability is unknown, so arch checks cannot run",
            "upgrade the driver (nvidia-smi reports compute_cap from driver 510 on)",
        )
    return Check(check_id, "pass", detail)


def _shm_check(check_id: str, shm_bytes: int | None, where: str, fix: str) -> Check:
    if shm_bytes is None:
        return Check(check_id, "skip", f"{where}: /dev/shm size unknown")
    if shm_bytes < MIN_SHM_BYTES:
        return Check(
            check_id,
            "warn",
            f"{where}: /dev/shm is {_human(shm_bytes)} (< 1 GiB): DataLoader workers can "
            "fail with 'Bus error' or 'unable to allocate shared memory'",
            fix,
        )
    return Check(check_id, "pass", f"{where}: /dev/shm is {_human(shm_bytes)}")


def host_checks(
    engine_info: dict | Exception | None,
    nvidia_smi_output: str | None,
    nvidia_smi_error: str | None,
    shm_bytes: int | None,
    cdi_files: list[str],
    *,
    toolkit: Sequence[str] = (),
    proc_driver_text: str | None = None,
) -> list[Check]:
    """Engine, GPU runtime, driver, each GPU and /dev/shm, from raw host facts."""
    gpus = parse_nvidia_smi(nvidia_smi_output) if nvidia_smi_output else []
    proc_driver = parse_proc_driver(proc_driver_text)
    checks = [
        _engine_check(engine_info),
        _runtime_check(engine_info, bool(gpus or proc_driver), cdi_files, toolkit),
        _driver_check(gpus, nvidia_smi_output, nvidia_smi_error, proc_driver),
    ]
    checks += [_gpu_check(g) for g in gpus]
    checks.append(
        _shm_check(
            "shm",
            shm_bytes,
            "host",
            "only matters for --host runs: `sudo mount -o remount,size=8G /dev/shm`",
        )
    )
    return checks


# ---------------------------------------------------------------------------- static checks


def _torch_version(text: str) -> Version | None:
    try:
        return Version(text.split("+", 1)[0])
    except InvalidVersion:
        return None


def _driver_ok(driver: str, cuda: str) -> bool | None:
    """Can `driver` run `cuda` (through minor-version compatibility if need be)? None when the
    minimum is not known."""
    floor = _facts().min_driver_to_run(cuda)
    if floor is None:
        return None
    return _version_tuple(driver) >= _version_tuple(floor)


def _uncovered(entry, gpus: Sequence[HostGpu]) -> list[HostGpu] | None:
    """GPUs the entry's torch build cannot run on: no kernels of torch's own for them, or
    CUDA libraries linked into the wheel that predate them. None when the arch list is unknown."""
    facts = _facts()
    arches = facts.arch_list(entry.torch, entry.cuda)
    if arches is None:
        return None
    return [
        g
        for g in gpus
        if g.capability
        and (
            not facts.kernel_supports(arches, g.capability)
            or facts.beyond_libraries(entry.torch, entry.cuda, g.capability)
        )
    ]


def _gpu_names(gpus: Sequence[HostGpu]) -> str:
    return ", ".join(f"GPU {g.index} {g.name} ({_sm(g.capability)})" for g in gpus)


def _uncovered_check(entry, label: str, arches, uncovered: Sequence[HostGpu]) -> Check:
    """Why each uncovered GPU cannot run the build: torch's kernels, or its linked libraries."""
    facts = _facts()
    no_kernels = [g for g in uncovered if not facts.kernel_supports(arches, g.capability)]
    old_libraries = [g for g in uncovered if g not in no_kernels]
    parts = []
    if no_kernels:
        parts.append(
            f"{label} has no kernels for {_gpu_names(no_kernels)} (its arch list: "
            f"{' '.join(arches)}): expect 'no kernel image is available for execution on the "
            "device'"
        )
    if old_libraries:
        limit = facts.library_limit(entry.torch, entry.cuda)
        ptx = " ".join(a for a in arches if a.startswith("compute_"))
        parts.append(
            f"{label} links in CUDA {entry.cuda}'s cuBLAS, cuDNN and cuFFT, which have machine "
            f"code only up to {_sm(limit)} and no PTX, so "
            f"{_gpu_names(old_libraries)} cannot run its matrix multiplies or convolutions"
            + (f" (torch's own PTX, {ptx}, does not help them)" if ptx else "")
            + ": expect 'CUBLAS_STATUS_EXECUTION_FAILED' or 'no kernel image is available for "
            "execution on the device'"
        )
    sms = _sms(uncovered)
    needs = "arch list covers" if no_kernels else "CUDA libraries know"
    return Check(
        "arch", "fail", "; ".join(parts), f"use a newer torch/CUDA build whose {needs} {sms}"
    )


def _needs_ptx_jit(entry, gpus: Sequence[HostGpu], driver: str) -> list[HostGpu]:
    """GPUs that only the build's PTX covers, on a driver older than the entry's CUDA toolkit:
    minor-version compatibility runs prebuilt machine code, but cannot JIT newer PTX."""
    minimum = _facts().min_driver_for(entry.cuda)
    if not minimum or _version_tuple(driver) >= _version_tuple(minimum):
        return []
    return _ptx_only_gpus(entry, gpus)


def _can_work(candidate, gpus: Sequence[HostGpu], driver: str | None) -> bool:
    if not gpus or driver is None:
        return candidate.cuda is None
    if candidate.cuda is None:
        return False  # a GPU host should be offered GPU entries
    if not _driver_ok(driver, candidate.cuda) or _needs_ptx_jit(candidate, gpus, driver):
        return False
    uncovered = _uncovered(candidate, gpus)
    return uncovered is not None and not uncovered


def suggest_entries(entry, gpus: Sequence[HostGpu], driver: str | None, all_entries) -> list:
    """Up to three entries that can work on this host, closest in torch version first."""
    wanted = _torch_version(entry.torch)
    if wanted is None:
        return []
    ranked = []
    for candidate in all_entries:
        have = _torch_version(candidate.torch)
        if candidate.name == entry.name or have is None or not _can_work(candidate, gpus, driver):
            continue
        same = (have.major, have.minor) == (wanted.major, wanted.minor)
        # Same major.minor first, then the nearest newer release; older only when nothing else.
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
    return [r[-1] for r in ranked[:3]]


def _cuda_number(cuda: str) -> float:
    major, _, minor = cuda.partition(".")
    return int(major) + int(minor or 0) / 100


def _describe(entry) -> str:
    cuda = f"CUDA {entry.cuda}" if entry.cuda else "CPU-only"
    return f"{entry.name} (torch {entry.torch}, {cuda}, Python {entry.python})"


def _with_suggestions(check: Check, suggestions: list) -> Check:
    if check.status != "fail" or not suggestions:
        return check
    names = ", ".join(_describe(e) for e in suggestions)
    return replace(check, fix=f"{check.fix}; or use {names}" if check.fix else f"use {names}")


def static_checks(entry, gpus: list[HostGpu], driver: str | None, all_entries) -> list[Check]:
    """Before anything runs: is the host driver new enough, and does the build cover the GPUs?"""
    if entry.cuda is None:
        return [
            Check("driver-for-cuda", "skip", f"{entry.name} is CPU-only: no driver needed"),
            Check("arch", "skip", f"{entry.name} is CPU-only: no GPU kernels"),
        ]
    facts = _facts()
    label = f"torch {entry.torch}+cu{entry.cuda.replace('.', '')}"

    minimum = facts.min_driver_for(entry.cuda)
    floor = facts.min_driver_to_run(entry.cuda)
    if driver is None:
        driver_check = Check(
            "driver-for-cuda",
            "fail",
            f"{entry.name} needs CUDA {entry.cuda} (driver >= {minimum or '?'}), but this host "
            "has no NVIDIA driver: its GPU part cannot work here",
            "run it on a host with an NVIDIA GPU and driver",
        )
    elif minimum is None:
        driver_check = Check(
            "driver-for-cuda",
            "warn",
            f"minimum driver for CUDA {entry.cuda} is not known; host driver is {driver}",
            "the container checks (`envkit doctor NAME` with the image built) will tell",
        )
    elif not _driver_ok(driver, entry.cuda):
        below = (
            f"{floor}, the oldest that runs CUDA {entry.cuda} through minor-version compatibility"
            if floor != minimum
            else f"{minimum}, the minimum for CUDA {entry.cuda}"
        )
        driver_check = Check(
            "driver-for-cuda",
            "fail",
            f"host driver {driver} is older than {below}: "
            "expect 'CUDA driver version is insufficient for CUDA runtime version'",
            f"upgrade the NVIDIA driver to >= {minimum}",
        )
    elif jit_gpus := _needs_ptx_jit(entry, gpus, driver):
        names = ", ".join(f"GPU {g.index} ({_sm(g.capability)})" for g in jit_gpus)
        driver_check = Check(
            "driver-for-cuda",
            "fail",
            f"host driver {driver} is older than {minimum}, CUDA {entry.cuda}'s own driver: "
            f"minor-version compatibility runs prebuilt machine code but cannot JIT-compile "
            f"CUDA {entry.cuda}'s PTX, and {label} has only PTX for {names}",
            f"upgrade the NVIDIA driver to >= {minimum}",
        )
    elif _version_tuple(driver) < _version_tuple(minimum):
        driver_check = Check(
            "driver-for-cuda",
            "warn",
            f"host driver {driver} is older than {minimum}, CUDA {entry.cuda}'s own driver, but "
            f"runs it through minor-version compatibility (>= {floor}): "
            f"prebuilt kernels work; code compiled at run time by CUDA {entry.cuda}'s compiler "
            "(nvrtc-generated kernels, CUDA extensions built in the image) may fail with 'the "
            "provided PTX was compiled with an unsupported toolchain'",
            f"upgrade the NVIDIA driver to >= {minimum} for full CUDA {entry.cuda} support",
        )
    else:
        driver_check = Check(
            "driver-for-cuda",
            "pass",
            f"host driver {driver} >= {minimum}, the minimum for CUDA {entry.cuda}",
        )

    if not gpus:
        arch_check = Check("arch", "skip", "no GPU on this host to compare with the arch list")
    else:
        uncovered = _uncovered(entry, gpus)
        arches = facts.arch_list(entry.torch, entry.cuda)
        unknown = [g for g in gpus if not g.capability]
        if uncovered is None:
            arch_check = Check(
                "arch",
                "warn",
                f"the arch list of {label} is not known: cannot predict kernel support",
                "the container checks run a real kernel on every GPU: build the image and run "
                f"`envkit doctor {entry.name}`",
            )
        elif uncovered:
            arch_check = _uncovered_check(entry, label, arches, uncovered)
        elif unknown:
            arch_check = Check(
                "arch",
                "warn",
                "compute capability unknown for GPU "
                + ", ".join(str(g.index) for g in unknown)
                + f"; the others are covered by {label}",
                "upgrade the driver so nvidia-smi reports compute_cap",
            )
        elif jit_only := [
            g
            for g in gpus
            if not facts.kernel_supports([a for a in arches if a.startswith("sm_")], g.capability)
        ]:
            caps = _sms(jit_only)
            ptx = " ".join(a for a in arches if a.startswith("compute_"))
            arch_check = Check(
                "arch",
                "warn",
                f"{label} has no native kernels for {caps}: only its PTX ({ptx}) covers them, "
                "which the driver JIT-compiles at first use (slow start-up); libraries bundled "
                "without PTX for this GPU (older cuDNN) can still fail with 'no kernel image is "
                "available for execution on the device'",
                f"prefer an entry whose arch list has {caps}",
            )
        else:
            caps = _sms(gpus)
            arch_check = Check("arch", "pass", f"{label} has native kernels for {caps}")

    checks = [driver_check, arch_check]
    if any(c.status == "fail" for c in checks):
        suggestions = suggest_entries(entry, gpus, driver, all_entries)
        checks = [_with_suggestions(c, suggestions) for c in checks]
    return checks


# ------------------------------------------------------------------------- container checks


def _same_release(have: str | None, want: str | None) -> bool:
    """Does `have` (e.g. "8.9.2") match `want` on every component `want` gives ("8.9")?"""
    if have is None or want is None:
        return have == want
    have_parts, want_parts = _version_tuple(have), _version_tuple(want)
    return have_parts[: len(want_parts)] == want_parts


def _mismatch_fix(entry, host_probe: bool) -> str:
    """The fix when what the probe found differs from the entry: the image's or the host's."""
    if host_probe:
        return (
            f"this Python is not {entry.name}'s stack: check the image instead "
            f"(`envkit doctor {entry.name}` without --host), or install torch=={entry.torch} here"
        )
    return f"rebuild the image: envkit build {entry.name}"


def _versions_checks(probe: dict, entry, host_probe: bool) -> list[Check]:
    checks = []
    python = probe.get("python") or "?"
    if entry is not None and not _same_release(python, entry.python):
        checks.append(
            Check(
                "python",
                "fail",
                f"Python {python}, but {entry.name} says Python {entry.python}",
                _mismatch_fix(entry, host_probe),
            )
        )
    else:
        checks.append(Check("python", "pass", f"Python {python}"))

    torch = probe.get("torch")
    if not torch:
        error = probe.get("torch_error") or "torch was not probed"
        checks.append(
            Check(
                "torch",
                "fail",
                f"torch cannot be imported: {_last_line(error)}",
                _mismatch_fix(entry, host_probe)
                if entry is not None
                else "install torch in this Python",
            )
        )
        return checks
    version = torch.get("version") or "?"
    rebuild = _mismatch_fix(entry, host_probe) if entry is not None else None
    if entry is not None and _torch_version(version) != _torch_version(entry.torch):
        checks.append(
            Check("torch", "fail", f"torch {version}, but {entry.name} says {entry.torch}", rebuild)
        )
    else:
        checks.append(Check("torch", "pass", f"torch {version}"))

    cuda = torch.get("cuda")
    built = f"CUDA {cuda}" if cuda else "CPU-only"
    if entry is not None and not _same_release(cuda, entry.cuda):
        wanted = f"CUDA {entry.cuda}" if entry.cuda else "CPU-only"
        checks.append(
            Check(
                "cuda-build",
                "fail",
                f"torch is a {built} build (torch.version.cuda = {cuda}), but {entry.name} "
                f"says {wanted}",
                rebuild,
            )
        )
    else:
        checks.append(Check("cuda-build", "pass", f"torch.version.cuda = {cuda} ({built} build)"))

    cudnn = torch.get("cudnn_version")
    want_cudnn = getattr(entry, "cudnn", None) if entry is not None else None
    if cudnn is None and want_cudnn is None:
        checks.append(Check("cudnn", "skip", "no cuDNN in this build"))
    elif want_cudnn is not None and not _same_release(cudnn, want_cudnn):
        checks.append(
            Check(
                "cudnn",
                "warn",
                f"cuDNN {cudnn or _absent(torch.get('cudnn_error'))}, but {entry.name} says "
                f"{want_cudnn}",
                f"correct the entry's cudnn, or {rebuild}",
            )
        )
    else:
        checks.append(Check("cudnn", "pass", f"cuDNN {cudnn}"))

    vision = probe.get("torchvision") or {}
    want_vision = entry.torchvision if entry is not None else None
    if vision.get("version") is None:
        if want_vision is None:
            checks.append(Check("torchvision", "skip", "torchvision not installed"))
        else:
            checks.append(
                Check(
                    "torchvision",
                    "fail",
                    f"torchvision {want_vision} cannot be imported: "
                    f"{_last_line(vision.get('error') or 'not probed')}",
                    rebuild,
                )
            )
    elif want_vision is not None and _torch_version(vision["version"]) != _torch_version(
        want_vision
    ):
        checks.append(
            Check(
                "torchvision",
                "fail",
                f"torchvision {vision['version']}, but {entry.name} says {want_vision}",
                rebuild,
            )
        )
    else:
        checks.append(Check("torchvision", "pass", f"torchvision {vision['version']}"))
    return checks


def _absent(error: str | None) -> str:
    return f"absent ({_last_line(error)})" if error else "absent"


def _cpu_entry_fix(entry) -> str:
    return (
        f"for GPU work use a CUDA entry of torch {entry.torch} (envkit list --torch "
        f"{entry.torch}); if CPU is what you want, pass --allow-cpu"
    )


def _cuda_check(
    probe: dict, entry, no_gpu: tuple[str, str] | None, host_probe: bool, on_host: bool
) -> Check:
    cuda = probe.get("cuda") or {}
    torch = probe.get("torch") or {}
    nvidia = probe.get("nvidia") or {}
    if cuda.get("available"):
        count = cuda.get("device_count")
        driver_cuda = (nvidia.get("libcuda") or {}).get("driver_cuda")
        extra = f", the driver supports CUDA {driver_cuda}" if driver_cuda else ""
        return Check(
            "cuda",
            "pass",
            f"torch.cuda.is_available(): {count} device(s), CUDA runtime {torch.get('cuda')}"
            + extra,
        )
    reason = cuda.get("reason")
    text = cuda.get("detail") or cuda.get("init_error") or "torch.cuda.is_available() is False"
    if reason == "cpu_only_build":
        if entry is not None and entry.cuda is None:
            return Check(
                "cuda",
                "fail",
                f"no GPU: {entry.name} is a CPU-only entry: {text}",
                _cpu_entry_fix(entry),
            )
        if entry is None and not nvidia.get("gpu_nodes"):
            return Check("cuda", "skip", f"no GPU here and {text}")
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            (_mismatch_fix(entry, host_probe) if entry is not None else None)
            or "install a CUDA build of torch (pip install --index-url "
            "https://download.pytorch.org/whl/cu<XY> torch)",
        )
    if entry is not None and entry.cuda is None:
        return Check(
            "cuda", "fail", f"no GPU: {entry.name} is a CPU-only entry", _cpu_entry_fix(entry)
        )
    if reason == "no_device_nodes":
        if no_gpu is not None:
            return Check("cuda", "fail", f"CUDA unavailable: {no_gpu[0]}", no_gpu[1])
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "install and load the NVIDIA driver (`nvidia-smi` must list the GPUs); on a "
            "machine without an NVIDIA GPU there is nothing for CUDA to use"
            if on_host
            else "run the container with GPUs (`--gpus all`) on a host with the NVIDIA driver "
            "and the NVIDIA Container Toolkit",
        )
    if reason == "driver_too_old":
        minimum = None
        if entry is not None and entry.cuda:
            minimum = _facts().min_driver_for(entry.cuda)
        fix = (
            f"upgrade the host's NVIDIA driver to >= {minimum} (CUDA {entry.cuda}), or use an "
            "entry with an older CUDA"
            if minimum
            else "upgrade the host's NVIDIA driver, or use an entry with an older CUDA"
        )
        return Check("cuda", "fail", f"CUDA unavailable, the driver is too old: {text}", fix)
    if reason == "bad_visible_devices":
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "unset CUDA_VISIBLE_DEVICES, or set it to indices (0..N-1) of the GPUs "
            + ("`nvidia-smi -L` lists" if on_host else "given to the container"),
        )
    if reason == "no_driver_library":
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "install the NVIDIA driver, which provides libcuda.so.1 (`ldconfig -p | grep "
            "libcuda` must find it)"
            if on_host
            else "request GPUs through the NVIDIA Container Toolkit (`--gpus all`), which "
            "mounts libcuda; NVIDIA_DRIVER_CAPABILITIES must include compute,utility",
        )
    explained = explain_error(text)
    if explained:
        return Check("cuda", "fail", f"CUDA unavailable: {explained[0]}: {text}", explained[1])
    return Check(
        "cuda",
        "fail",
        f"CUDA unavailable: {text}",
        "run `nvidia-smi` to see whether the driver works"
        if on_host
        else "run `nvidia-smi` on the host and inside the container to see which side is wrong",
    )


def _beyond_libraries(probe: dict, entry, cap: str) -> bool:
    """Is GPU capability `cap` past the CUDA libraries linked into the entry's wheel, and is the
    torch the probe ran that wheel's (a `--host` Python may run another torch)?"""
    if entry is None or not entry.cuda or not cap or cap == "?":
        return False
    ran = _torch_version((probe.get("torch") or {}).get("version") or "")
    if ran is None or ran != _torch_version(entry.torch):
        return False
    return _facts().beyond_libraries(entry.torch, entry.cuda, cap)


def _kernel_checks(probe: dict, entry) -> list[Check]:
    devices = probe.get("devices") or []
    kernels = {k.get("index"): k for k in probe.get("kernels") or []}
    arches = (probe.get("cuda") or {}).get("arch_list") or []
    if not arches and entry is not None and entry.cuda:
        # torch < 1.7 has no get_arch_list(): fall back to what the matrix knows of the build.
        arches = list(_facts().arch_list(entry.torch, entry.cuda) or [])
    checks = []
    for dev in devices:
        index = dev.get("index")
        if dev.get("error"):
            checks.append(
                Check(
                    f"gpu{index}-kernels",
                    "fail",
                    f"GPU {index} is counted by torch.cuda.device_count() but cannot be opened: "
                    f"{_last_line(dev['error'])}",
                    "on a MIG-enabled GPU give the container MIG devices (--gpus "
                    "'\"device=0:0\"' or NVIDIA_VISIBLE_DEVICES=MIG-<uuid>), or set "
                    "CUDA_VISIBLE_DEVICES to GPUs it can open; `nvidia-smi -L` lists them",
                )
            )
            continue
        cap = dev.get("capability") or "?"
        sm = _sm(cap)
        memory = dev.get("memory_bytes") or 0
        label = f"GPU {index} {dev.get('name')} ({sm}, {memory / GIB:.0f} GiB)"
        check_id = f"gpu{index}-kernels"
        result = kernels.get(index) or {}
        failures = []
        full_errors = []
        for op in ("matmul", "conv"):
            outcome = result.get(op) or {"ok": False, "error": "not run"}
            if outcome.get("error"):
                failures.append((op, _last_line(outcome["error"])))
                full_errors.append(str(outcome["error"]))
            elif not outcome.get("ok"):
                failures.append(
                    (
                        op,
                        f"differs from the CPU by {outcome.get('max_abs_error')} "
                        f"(bound {outcome.get('bound')})",
                    )
                )
        if failures:
            text = "; ".join(f"{op}: {why}" for op, why in failures)
            predicted = arches and cap != "?" and not _facts().kernel_supports(arches, cap)
            if not predicted and _beyond_libraries(probe, entry, cap):
                # Before the generic texts: "no kernel image" here means the linked-in
                # libraries, not torch's own kernels, which its PTX covers.
                limit = _facts().library_limit(entry.torch, entry.cuda)
                explained = (
                    f"the CUDA {entry.cuda} libraries linked into this build (cuBLAS, cuDNN) "
                    f"stop at {_sm(limit)} and carry no PTX",
                    "",
                )
            else:
                explained = explain_error("\n".join([text, *full_errors]))
            if explained is None:
                explained = (
                    (f"the build's arch list ({' '.join(arches)}) lacks {sm}", "")
                    if predicted
                    else (
                        "wrong results or errors on the GPU",
                        "check the GPU's health (`nvidia-smi -q -d ECC`, Xid errors in dmesg)",
                    )
                )
            checks.append(
                Check(
                    check_id,
                    "fail",
                    f"{label}: {explained[0]}: {text}",
                    explained[1]
                    or "use an entry whose torch build covers " + sm + " (newer torch/CUDA)",
                )
            )
            continue
        worst = max((result.get(op) or {}).get("max_abs_error") or 0.0 for op in ("matmul", "conv"))
        checks.append(
            Check(
                check_id,
                "pass",
                f"{label}: matmul and conv forward+backward match the CPU (max error {worst:.1e})",
            )
        )
    return checks


def container_checks(
    probe: dict,
    entry=None,
    *,
    no_gpu: tuple[str, str] | None = None,
    host_probe: bool = False,
    caller_uid: int | None = None,
    rootless: bool = False,
) -> list[Check]:
    """Checks from the probe's JSON, compared with `entry` when given.

    `no_gpu` is (reason, fix) when the doctor deliberately ran the probe without GPUs.
    `host_probe` when the probe ran on a Python of the user's choosing (`--host`), not in the
    entry's image; that Python may itself be in a container, which the probe reports.
    `caller_uid` is the host user's uid when the probe ran as the image's default user, on a
    `rootless` engine or not.
    """
    if probe.get("fatal"):
        return [
            Check(
                "probe",
                "fail",
                f"the probe itself failed: {probe['fatal']}",
                "run `python3 envkit/inside/probe.py` in the image by hand to see the error",
            )
        ]
    errors = probe.get("errors") or []
    contained = probe.get("in_container")
    if contained is None:  # recordings older than the probe's own answer
        contained = not host_probe
    where = "container" if contained else "host"
    if errors:
        sections = ", ".join(f"{e.get('section')}: {_last_line(e.get('error'))}" for e in errors)
        checks = [
            Check(
                "probe",
                "warn",
                f"the probe hit errors in {sections}",
                "the checks below that need those parts are incomplete",
            )
        ]
    else:
        checks = [Check("probe", "pass", f"probe ran: {probe.get('platform') or 'unknown OS'}")]
    checks += _versions_checks(probe, entry, host_probe)
    if not probe.get("torch"):
        return checks

    cuda_check = _cuda_check(probe, entry, no_gpu, host_probe, not contained)
    checks.append(cuda_check)
    if (probe.get("cuda") or {}).get("available"):
        if not probe.get("devices") and not any(e.get("section") == "devices" for e in errors):
            checks.append(
                Check(
                    "gpu-kernels",
                    "fail",
                    "CUDA is available but the probe found no device to run a kernel on",
                    "run `nvidia-smi -L` in the container: on MIG-enabled GPUs create MIG "
                    "instances (`nvidia-smi mig -cgi ... -C`) or disable MIG",
                )
            )
        checks += _kernel_checks(probe, entry)
        count = len([d for d in probe.get("devices") or [] if not d.get("error")])
        nccl = probe.get("nccl") or {}
        if count <= 1:
            checks.append(Check("nccl", "skip", f"{count} GPU: NCCL is only needed for several"))
        elif nccl.get("available"):
            checks.append(Check("nccl", "pass", f"NCCL {nccl.get('version') or '?'} available"))
        else:
            checks.append(
                Check(
                    "nccl",
                    "fail",
                    f"NCCL unavailable with {count} GPUs: {nccl.get('error') or 'not built in'}",
                    "use an official CUDA wheel of torch for Linux (they ship NCCL)",
                )
            )
    elif cuda_check.status != "skip":
        checks.append(Check("gpu-kernels", "skip", "not run: CUDA is unavailable (see cuda)"))

    loader = probe.get("dataloader")
    shm = (probe.get("shm") or {}).get("bytes")
    if loader is None:
        checks.append(Check("dataloader", "skip", "not run"))
    elif loader.get("ok"):
        checks.append(
            Check(
                "dataloader",
                "pass",
                f"a DataLoader with {loader.get('workers')} workers ran "
                f"({loader.get('batches')} batches in {loader.get('seconds')} s)",
            )
        )
    else:
        error = _last_line(loader.get("error") or "wrong data")
        explained = explain_error(error)
        shm_text = f" (/dev/shm is {_human(shm)})" if shm else ""
        checks.append(
            Check(
                "dataloader",
                "fail",
                f"a DataLoader with {loader.get('workers')} workers failed{shm_text}: "
                + (_explained(explained[0], error) if explained else error),
                explained[1] if explained else "run the DataLoader with num_workers=0 to see why",
            )
        )
    checks.append(
        _shm_check(
            "probe-shm",
            shm,
            where,
            "run with a larger --shm-size (e.g. 8g) or --ipc=host"
            if where == "container"
            else "`sudo mount -o remount,size=8G /dev/shm`",
        )
    )
    checks.append(_user_check(probe.get("identity") or {}, caller_uid, rootless))
    return checks


def _user_check(identity: dict, caller_uid: int | None, rootless: bool = False) -> Check:
    """Whose files a plain `docker run` of the image leaves in a bind mount: the image's default
    user's. Root on the host can use any; anyone else gets files they may not change. On a
    rootless engine container root is the caller and every other uid a subordinate one."""
    uid = identity.get("uid")
    if uid is None:
        return Check("user", "skip", "uid/gid not reported")
    who = f"uid {uid}, gid {identity.get('gid')} ({identity.get('user') or 'no passwd entry'})"
    if rootless:
        if uid == 0:
            return Check("user", "pass", f"{who}: under rootless Docker that is you on the host")
        return Check(
            "user",
            "warn",
            f"the image runs as {who} by default: rootless Docker maps it to one of your "
            "subordinate uids, so files it writes into a bind mount will not be yours",
            "use `envkit run`, which runs as container root (you, under rootless Docker), or "
            "pass `--user 0:0` to docker run",
        )
    if caller_uid is None or caller_uid in (0, uid):
        return Check("user", "pass", who)
    owner = "root" if uid == 0 else f"uid {uid}"
    return Check(
        "user",
        "warn",
        f"the image runs as {who} by default and you are uid {caller_uid}: files a plain "
        f"`docker run` writes into a bind mount will belong to {owner}, not to you",
        "use `envkit run`, which runs as you (--user UID:GID), or pass "
        "`--user $(id -u):$(id -g)` to docker run",
    )


# -------------------------------------------------------------------------------- gatherers


def run_nvidia_smi(timeout: float = 20) -> tuple[str | None, str | None]:
    """(csv output, None) or (None, error text) for the GPU query, tolerating old drivers."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, NVIDIA_SMI_MISSING
    fields = list(NVIDIA_SMI_FIELDS)
    # Older drivers reject fields they do not know (compute_cap before 510, MIG before 450):
    # drop the field named in the error and fill its column with [N/A].
    for _ in range(len(NVIDIA_SMI_FIELDS)):
        try:
            done = subprocess.run(
                [exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None, f"nvidia-smi did not answer within {timeout:.0f}s (a hung driver or GPU)"
        except OSError as exc:
            return None, f"nvidia-smi could not run: {exc}"
        text = (done.stdout + done.stderr).strip()
        bad = re.search(r'Field "([^"]+)" is not a valid field to query', text)
        if done.returncode != 0 and bad and bad.group(1) in fields:
            fields.remove(bad.group(1))
            continue
        if done.returncode != 0:
            # One GPU in a bad state makes nvidia-smi exit non-zero after listing the others:
            # keep their rows, and the rest of what it printed as the error.
            partial = _fill_missing(done.stdout, fields)
            rows = parse_nvidia_smi(partial)
            if not rows:
                return None, text or f"nvidia-smi exited with {done.returncode}"
            chatter = [
                line
                for line in text.splitlines()
                if line.strip() and not parse_nvidia_smi(_fill_missing(line, fields))
            ]
            return partial, "\n".join(chatter) or f"nvidia-smi exited with {done.returncode}"
        return _fill_missing(done.stdout, fields), None
    return None, "nvidia-smi rejected every query field"


def _fill_missing(csv_text: str, fields: list[str]) -> str:
    if list(fields) == list(NVIDIA_SMI_FIELDS):
        return csv_text
    rows = []
    for row in csv.reader(csv_text.splitlines(), skipinitialspace=True):
        if len(row) != len(fields):
            rows.append(", ".join(row))
            continue
        have = dict(zip(fields, row))
        rows.append(", ".join(have.get(f, "[N/A]") for f in NVIDIA_SMI_FIELDS))
    return "\n".join(rows) + "\n"


def gather_host(timeout: float = 20) -> HostFacts:
    """Read nvidia-smi, /proc/driver/nvidia/version, /dev/shm, CDI specs and toolkit binaries."""
    output, error = run_nvidia_smi(timeout)
    try:
        stat = os.statvfs("/dev/shm")
        shm = stat.f_frsize * stat.f_blocks
    except (OSError, AttributeError):
        shm = None
    cdi = sorted(
        path
        for folder in CDI_DIRS
        for pattern in ("*.yaml", "*.yml", "*.json")
        for path in glob.glob(os.path.join(folder, pattern))
    )
    toolkit = [path for path in (shutil.which(name) for name in TOOLKIT_BINARIES) if path]
    try:
        proc = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        proc = None
    return HostFacts(output, error, shm, cdi, toolkit, proc)


def parse_probe_output(stdout: str) -> dict | None:
    """The probe's JSON document from a program's stdout, or None when there is none."""
    text = stdout.strip()
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    except ValueError:
        pass
    # Something in the image printed before the probe could redirect fd 1: find the document.
    start = text.find("\n{")
    end = text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start + 1 : end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _probe_on_host(python: str, timeout: float) -> tuple[dict | None, Check | None]:
    try:
        done = subprocess.run(
            [python, str(PROBE_PATH)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, Check(
            "probe", "fail", f"the probe did not finish within {timeout:.0f}s", "see the GPU state"
        )
    except OSError as exc:
        return None, Check(
            "probe", "fail", f"{python} cannot run: {exc}", "pass a working Python interpreter"
        )
    return _parsed(done.returncode, done.stdout, done.stderr)


def _parsed(code: int, stdout: str, stderr: str) -> tuple[dict | None, Check | None]:
    probe = parse_probe_output(stdout)
    if probe is not None:
        return probe, None
    tail = _last_line(stderr) or _last_line(stdout) or "no output"
    explained = explain_error(stderr + "\n" + stdout)
    return None, Check(
        "probe",
        "fail",
        f"the probe printed no report (exit code {code}): "
        + (_explained(explained[0], tail) if explained else tail),
        explained[1] if explained else "run the probe by hand to see the whole error",
    )


def _gpu_plan(
    checks: list[Check], gpus: list[HostGpu], partial: bool = False
) -> tuple[str | None, tuple[str, str] | None]:
    """The GPUs to request for the container ("all", or the indices nvidia-smi listed before
    it failed on another GPU when `partial`), and when none, (reason, fix) for the report."""
    by_id = {c.id: c for c in checks}
    runtime, driver = by_id.get("gpu-runtime"), by_id.get("driver")
    if not gpus:
        why = driver.detail if driver is not None else "no NVIDIA GPU on this host"
        return None, (
            f"no GPU requested: no NVIDIA GPU on this host ({why})",
            (driver.fix if driver is not None and driver.fix else None)
            or "run on a host with an NVIDIA GPU, or use a CPU-only entry",
        )
    if runtime is not None and runtime.status in ("fail", "skip"):
        return None, (f"no GPU requested: {runtime.detail}", runtime.fix or TOOLKIT_FIX)
    if partial:  # the GPUs that answered are still worth proving
        return ",".join(str(g.index) for g in gpus), None
    if driver is not None and driver.status == "fail":
        return None, (f"no GPU requested: {driver.detail}", driver.fix or "")
    return "all", None


def run_doctor(
    entry=None,
    *,
    host_probe: bool = False,
    all_entries: Iterable = (),
    image: str | None = None,
    engine=None,
    host: HostFacts | None = None,
    python: str | None = None,
    shm_size: str | None = "8g",
    timeout: float = 600,
    allow_cpu: bool = False,
    static_only: bool = False,
) -> DoctorReport:
    """Host checks, then (for an entry) static checks and the probe in its image or on the host.

    `engine` defaults to envkit.engine (anything with engine_info() and run_program() will do);
    `host` defaults to gather_host(); `image` to envkit/<entry name>:latest. `shm_size` is
    what `envkit run` gives containers, so the probe sees the /dev/shm users will get.
    """
    all_entries = list(all_entries)
    if engine is None and not host_probe and not static_only:
        from . import engine as engine_module

        engine = engine_module
    info: dict | Exception | None = None
    if not host_probe and not static_only:
        try:
            info = engine.engine_info()
        except EnvkitError as exc:
            info = exc
    facts = host if host is not None else gather_host()
    checks = host_checks(
        info,
        facts.nvidia_smi_output,
        facts.nvidia_smi_error,
        facts.shm_bytes,
        facts.cdi_files,
        toolkit=facts.toolkit,
        proc_driver_text=facts.proc_driver_text,
    )
    gpus = parse_nvidia_smi(facts.nvidia_smi_output) if facts.nvidia_smi_output else []
    # The version is a fact even when the driver check failed (a GPU fell off the bus, a
    # module/library mismatch): the static checks compare with it, the `driver` row says what broke.
    driver = (gpus[0].driver if gpus else None) or parse_proc_driver(facts.proc_driver_text)
    report = DoctorReport(ok=True, checks=checks, gpus=gpus)

    if entry is not None:
        report.entry = entry.name
        static = static_checks(entry, gpus, driver, all_entries)
        checks += static
        if any(c.status == "fail" for c in static):
            report.suggestions = [e.name for e in suggest_entries(entry, gpus, driver, all_entries)]

    if static_only:
        pass  # host facts and the entry's static checks are the whole report
    elif host_probe:
        probe, failed = _probe_on_host(python or sys.executable, timeout)
        if probe is not None:
            report.probe = probe
            checks += container_checks(probe, entry, host_probe=True)
        else:
            checks.append(failed)
    elif entry is not None:
        report.image = image or f"envkit/{entry.name}:latest"
        checks += _probe_in_image(
            engine,
            report.image,
            entry,
            info,
            checks,
            gpus,
            report,
            shm_size=shm_size,
            timeout=timeout,
            partial=bool(gpus and facts.nvidia_smi_error),
        )

    if allow_cpu:
        # The user accepts a CPU-only result: missing GPUs are worth a warning, not a failure.
        # A host with no NVIDIA driver at all is a CPU host too; a driver too old is not.
        gpu_only = _GPU_ONLY_CHECKS + (("driver-for-cuda",) if driver is None else ())
        checks[:] = [
            replace(c, status="warn") if c.id in gpu_only and c.status == "fail" else c
            for c in checks
        ]
    report.ok = not any(c.status == "fail" for c in checks)
    return report


def _probe_in_image(
    engine,
    image: str,
    entry,
    info,
    checks: list[Check],
    gpus: list[HostGpu],
    report,
    *,
    shm_size: str | None,
    timeout: float,
    partial: bool = False,
) -> list[Check]:
    if not isinstance(info, dict):
        return [Check("image", "skip", "not probed: the Docker engine is unreachable (see engine)")]
    image_id = getattr(engine, "image_id", None)
    if image_id is not None and image_id(image) is None:
        return [
            Check(
                "image",
                "fail",
                f"no image {image}: the container checks cannot run",
                f"build it: envkit build {entry.name}",
            )
        ]
    out: list[Check] = []
    want_gpus, no_gpu = (None, None) if entry.cuda is None else _gpu_plan(checks, gpus, partial)
    try:
        result = engine.run_program(
            image,
            PROBE_PATH,
            [],
            gpus=want_gpus,
            shm_size=shm_size,
            timeout=timeout,
        )
    except ProgramTimedOut:
        return out + [_probe_timed_out(timeout, bool(want_gpus), _ptx_only_gpus(entry, gpus))]
    except EnvkitError as exc:
        message = exc.message
        explained = explain_error(message)
        if not want_gpus or not isinstance(exc, ContainerStartFailed):
            return [
                Check(
                    "image",
                    "fail",
                    message,  # says itself whether the container did not start or what broke
                    (explained[1] if explained else None) or exc.fix,
                )
            ]
        # The engine refused the GPUs: report that, then still check the image without them.
        detail = _explained(explained[0], message) if explained else message
        fix = (explained[1] if explained else None) or exc.fix or TOOLKIT_FIX
        out.append(Check("gpu-attach", "fail", f"GPUs could not be attached: {detail}", fix))
        no_gpu = (f"no GPU attached: {explained[0] if explained else message}", fix)
        try:
            result = engine.run_program(
                image, PROBE_PATH, [], gpus=None, shm_size=shm_size, timeout=timeout
            )
        except ProgramTimedOut:
            return out + [_probe_timed_out(timeout, False)]
        except EnvkitError as again:
            return out + [Check("image", "fail", again.message, again.fix)]
    else:
        if want_gpus:
            flag = "all" if want_gpus == "all" else f"'\"device={want_gpus}\"'"
            out.append(
                Check("gpu-attach", "pass", f"GPUs attached to the container (--gpus {flag})")
            )
    probe, failed = _parsed(result.exit_code, result.stdout, result.stderr)
    if probe is None:
        return out + [failed]
    # The doctor started the container, so it knows better than the probe's own guess.
    probe["in_container"] = True
    report.probe = probe
    # Docker Desktop's file sharing gives bind-mounted files to the host user whatever the uid.
    caller = None if _is_desktop_vm(info) else _caller_uid()
    return out + container_checks(
        probe, entry, no_gpu=no_gpu, caller_uid=caller, rootless=is_rootless(info)
    )


def _caller_uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _ptx_only_gpus(entry, gpus: Sequence[HostGpu]) -> list[HostGpu]:
    """GPUs the entry's build covers only through PTX, which the driver compiles at first use."""
    facts = _facts()
    arches = facts.arch_list(entry.torch, entry.cuda) if entry.cuda else None
    if not arches:
        return []
    machine_code = [a for a in arches if a.startswith("sm_")]
    return [
        g
        for g in gpus
        if g.capability
        and facts.kernel_supports(arches, g.capability)
        and not facts.kernel_supports(machine_code, g.capability)
        # No JIT can help where the linked-in libraries have no code (torch < 1.6).
        and not facts.beyond_libraries(entry.torch, entry.cuda, g.capability)
    ]


def _probe_timed_out(timeout: float, with_gpus: bool, ptx_only=()) -> Check:
    if with_gpus and ptx_only:
        sms = _sms(ptx_only)
        return Check(
            "probe",
            "fail",
            f"the probe did not finish within {timeout:.0f}s with the GPUs attached; this build "
            f"has only PTX for {sms}, which the driver compiles for the whole library at the "
            "first CUDA call (this can take longer than the limit)",
            "use an entry whose arch list has machine code for the GPU (`envkit doctor NAME "
            "--static` names them), or run once with a persistent JIT cache (mount a folder at "
            "~/.nv/ComputeCache and set CUDA_CACHE_MAXSIZE=4294967296)",
        )
    return Check(
        "probe",
        "fail",
        f"the probe did not finish within {timeout:.0f}s"
        + (" with the GPUs attached" if with_gpus else ""),
        "a hung GPU or driver is the usual cause: check `nvidia-smi` on the host; "
        "if the machine is only slow, run doctor again",
    )
