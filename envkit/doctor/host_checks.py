"""Host checks: the engine, its way to the GPUs, the driver, each GPU and /dev/shm.

Pure functions of raw host facts (docker info, nvidia-smi's output, /proc, /dev/shm's size), so
every rule is testable from recorded inputs; `runner` gathers them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..gpu.host import (
    NVIDIA_SMI_MISSING,
    TOOLKIT_FIX,
    HostGpu,
    engine_is_rootless,
    gpu_runtime,
    parse_nvidia_smi,
    parse_proc_driver,
    sm_name,
)
from ..gpu.known_errors import explain_error, last_line, with_explanation
from .finding import GIB, Check, human_bytes

# DataLoader workers pass every batch through /dev/shm; Docker's default 64 MiB runs out fast.
MIN_SHM_BYTES = GIB


def _engine_check(engine_info: dict | Exception | None) -> Check:
    if engine_info is None:
        return Check("engine", "skip", "Docker not used (--host or --static)")
    if isinstance(engine_info, Exception):
        message = getattr(engine_info, "message", None) or str(engine_info)
        explained = explain_error(message)
        fix = getattr(engine_info, "fix", None)
        if explained:  # envkit's own fix knows the address it tried; the table's is generic
            return Check(
                "engine", "fail", with_explanation(explained[0], message), fix or explained[1]
            )
        return Check(
            "engine", "fail", f"Docker engine unreachable: {message}", fix or "check dockerd"
        )
    version = engine_info.get("ServerVersion") or "?"
    system = engine_info.get("OperatingSystem") or "unknown OS"
    rootless = engine_is_rootless(engine_info)
    detail = f"Docker {version} on {system}" + (" (rootless)" if rootless else "")
    return Check("engine", "pass", detail)


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
    runtime = gpu_runtime(engine_info, cdi_files, toolkit)
    if runtime.desktop_vm:
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
    ways = "; ".join(runtime.ways)
    if runtime.can_attach:
        if not host_has_gpu:
            return Check(
                "gpu-runtime",
                "pass",
                f"GPU runtime present ({ways}), but no NVIDIA GPU on this host",
            )
        if runtime.rootless:
            return Check(
                "gpu-runtime",
                "warn",
                f"rootless Docker with a GPU runtime ({ways}): GPU containers "
                "fail unless the toolkit skips cgroups",
                "set `no-cgroups = true` in /etc/nvidia-container-runtime/config.toml "
                "(`sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place`)",
            )
        return Check("gpu-runtime", "pass", ways)
    if not host_has_gpu:
        return Check("gpu-runtime", "skip", f"no NVIDIA GPU on this host ({runtime.searched()})")
    return Check(
        "gpu-runtime", "fail", f"Docker cannot attach GPUs: {runtime.searched()}", TOOLKIT_FIX
    )


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
                with_explanation(
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
            f"nvidia-smi failed: {last_line(nvidia_smi_error)}",
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
            f"{last_line(nvidia_smi_error)}",
            "a GPU is in a bad state or fell off the bus: look for Xid errors (`sudo dmesg | "
            "grep -i xid`), reset it (`sudo nvidia-smi -r -i N`) or reboot",
        )
    if not gpus:
        if nvidia_smi_output is not None:
            return Check(
                "driver",
                "warn",
                f"NVIDIA driver {proc_driver or 'loaded'}, but nvidia-smi lists no GPU: "
                f"{last_line(nvidia_smi_output) or 'empty output'}",
                "check the GPU is seated and powered (`lspci | grep -i nvidia`, `dmesg`)",
            )
        return Check(
            "driver",
            "warn",
            "no NVIDIA driver answered: only CPU-only entries can run here",
            "if this host has an NVIDIA GPU, install the NVIDIA driver and reboot",
        )
    return Check("driver", "pass", f"NVIDIA driver {smi_driver or proc_driver}")


def _gpu_check(gpu: HostGpu) -> Check:
    memory = f"{gpu.memory_mib / 1024:.0f} GiB" if gpu.memory_mib else "memory unknown"
    sm = sm_name(gpu.capability) if gpu.capability else "sm_?"
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


def shm_check(check_id: str, shm_bytes: int | None, where: str, fix: str) -> Check:
    if shm_bytes is None:
        return Check(check_id, "skip", f"{where}: /dev/shm size unknown")
    if shm_bytes < MIN_SHM_BYTES:
        return Check(
            check_id,
            "warn",
            f"{where}: /dev/shm is {human_bytes(shm_bytes)} (< 1 GiB): DataLoader workers can "
            "fail with 'Bus error' or 'unable to allocate shared memory'",
            fix,
        )
    return Check(check_id, "pass", f"{where}: /dev/shm is {human_bytes(shm_bytes)}")


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
        shm_check(
            "shm",
            shm_bytes,
            "host",
            "only matters for --host runs: `sudo mount -o remount,size=8G /dev/shm`",
        )
    )
    return checks
