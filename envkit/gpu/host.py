"""The host's NVIDIA GPUs and driver, and whether Docker can hand GPUs to containers.

nvidia-smi, /proc/driver/nvidia/version, CDI specs and the NVIDIA Container Toolkit's binaries
are read by the gatherers (`gather_host`, `run_nvidia_smi`); everything else is a pure function
of what they read, so the rules can be tested from recorded outputs.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import facts

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
# Docker's --gpus works when dockerd finds NVIDIA's OCI hook on its PATH (its built-in "nvidia"
# device driver); before toolkit 1.4 the hook was called nvidia-container-toolkit.
HOOK_BINARIES = ("nvidia-container-runtime-hook", "nvidia-container-toolkit")
# The rest of the toolkit: installed, but by themselves they do not let --gpus work.
TOOLKIT_BINARIES = (*HOOK_BINARIES, "nvidia-container-runtime", "nvidia-ctk")
TOOLKIT_FIX = (
    "install the NVIDIA Container Toolkit (package nvidia-container-toolkit), then run "
    "`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
)


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


def sm_name(capability: str) -> str:
    """The name CUDA and torch's arch lists use for a compute capability: 8.6 -> sm_86."""
    return "sm_" + capability.replace(".", "")


def sm_names(gpus: Sequence[HostGpu]) -> str:
    """The distinct sm_XY names of `gpus`, sorted, comma-separated."""
    return ", ".join(sorted({sm_name(g.capability) for g in gpus}))


@dataclass(frozen=True)
class GpuHost:
    """What the fit rules need of a host: its GPUs and its driver (None: no NVIDIA driver)."""

    gpus: tuple[HostGpu, ...] = ()
    driver: str | None = None

    @classmethod
    def of(cls, driver: str | None, *capabilities: str) -> GpuHost:
        """A host with one GPU per compute capability given ("9.0"), for what-if questions."""
        gpus = tuple(
            HostGpu(index, f"GPU {index}", None, capability, driver, None)
            for index, capability in enumerate(capabilities)
        )
        return cls(gpus, driver)

    @property
    def has_gpu(self) -> bool:
        """A GPU or at least a driver: a host that wants GPU images."""
        return bool(self.gpus) or self.driver is not None

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The distinct known compute capabilities, in GPU order."""
        return tuple(dict.fromkeys(g.capability for g in self.gpus if g.capability))

    def describe(self) -> str:
        """One line: the driver and the GPUs' compute capabilities."""
        if not self.has_gpu:
            return "host: no NVIDIA GPU found"
        caps = ", ".join(self.capabilities) or "unknown"
        return f"host: driver {self.driver or 'unknown'}, GPU compute capability {caps}"


def host_from_facts(host_facts: HostFacts) -> GpuHost:
    """The GPUs nvidia-smi listed, and the driver version: nvidia-smi's, else the kernel
    module's. The version is a fact even when nvidia-smi then failed (a GPU fell off the bus, a
    module/library mismatch)."""
    output = host_facts.nvidia_smi_output
    gpus = tuple(parse_nvidia_smi(output)) if output else ()
    driver = next((g.driver for g in gpus if g.driver), None) or parse_proc_driver(
        host_facts.proc_driver_text
    )
    return GpuHost(gpus, driver)


def detect(timeout: float = 20) -> GpuHost:
    """This host's GPUs and driver."""
    return host_from_facts(gather_host(timeout))


# --------------------------------------------------------------------- nvidia-smi


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
    model = facts.gpu_model_for(name)
    return model.capability if model is not None else None


def parse_proc_driver(text: str | None) -> str | None:
    """Driver version from /proc/driver/nvidia/version ('... Kernel Module  550.54.15  ...')."""
    if not text:
        return None
    match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


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
    cdi = find_cdi_files()
    toolkit = find_toolkit()
    try:
        proc = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        proc = None
    return HostFacts(output, error, shm, cdi, toolkit, proc)


# ---------------------------------------------------------------- Docker's way to the GPUs


def engine_is_rootless(info: dict) -> bool:
    """Whether `docker info` describes a rootless engine: uid 0 in its containers is the user
    who runs dockerd, and every other uid maps to one of that user's subordinate uids."""
    return any("rootless" in str(o) for o in info.get("SecurityOptions") or ())


def is_desktop_vm(info: dict) -> bool:
    """Docker Desktop's Linux VM (kernel "linuxkit"), which has no GPU; its WSL2 backend on
    Windows does."""
    return (
        "Docker Desktop" in (info.get("OperatingSystem") or "")
        and "microsoft" not in (info.get("KernelVersion") or "").lower()
    )


@dataclass(frozen=True)
class GpuRuntime:
    """How this engine could hand GPUs to a container, read from docker info and the host."""

    ways: tuple[str, ...]  # each thing found that lets --gpus work
    runtimes: tuple[str, ...]  # every runtime docker info lists
    desktop_vm: bool
    rootless: bool
    toolkit_only: tuple[str, ...] = ()  # toolkit binaries found that do not let --gpus work

    @property
    def can_attach(self) -> bool:
        """Whether `--gpus` can work on this engine."""
        return bool(self.ways) and not self.desktop_vm

    def searched(self) -> str:
        """What was looked for and not found, for a message."""
        toolkit = (
            f"only {', '.join(self.toolkit_only)} of the toolkit (not its hook) on PATH"
            if self.toolkit_only
            else "no nvidia-container-runtime-hook on PATH"
        )
        return (
            f"no nvidia runtime in docker info (runtimes: {', '.join(self.runtimes) or 'none'}), "
            f"no CDI spec in {' or '.join(CDI_DIRS)}, {toolkit}"
        )


def gpu_runtime(info: dict, cdi_files: Sequence[str], toolkit: Sequence[str]) -> GpuRuntime:
    """The one answer to "can this engine attach GPUs?", for doctor and run alike.

    A registered nvidia runtime, an NVIDIA CDI spec, or NVIDIA's hook on PATH (dockerd's
    built-in driver for --gpus looks for it) each make --gpus work; Docker Desktop's VM never.
    """
    runtimes = tuple(sorted(info.get("Runtimes") or {}))
    ways = []
    if any("nvidia" in r for r in runtimes):
        ways.append("nvidia runtime registered")
    nvidia_cdi = [f for f in cdi_files if "nvidia" in os.path.basename(f).lower()]
    if nvidia_cdi:
        ways.append("CDI spec " + ", ".join(nvidia_cdi))
    names = [os.path.basename(t) for t in toolkit]
    hooks = [n for n in names if n in HOOK_BINARIES]
    if hooks:
        ways.append("toolkit " + ", ".join(names))
    return GpuRuntime(
        ways=tuple(ways),
        runtimes=runtimes,
        desktop_vm=is_desktop_vm(info),
        rootless=engine_is_rootless(info),
        toolkit_only=() if hooks else tuple(names),
    )


def find_cdi_files(dirs: Sequence[str] = CDI_DIRS) -> list[str]:
    """CDI spec files in `dirs`."""
    return sorted(
        path
        for folder in dirs
        for pattern in ("*.yaml", "*.yml", "*.json")
        for path in glob.glob(os.path.join(folder, pattern))
    )


def find_toolkit() -> list[str]:
    """The NVIDIA Container Toolkit's binaries on PATH."""
    return [path for path in (shutil.which(name) for name in TOOLKIT_BINARIES) if path]


def runtime_of_engine(info: dict) -> GpuRuntime:
    """`gpu_runtime` for this engine, reading the CDI folders it names and this host's PATH."""
    dirs = info.get("CDISpecDirs") or CDI_DIRS
    return gpu_runtime(info, find_cdi_files(dirs), find_toolkit())
