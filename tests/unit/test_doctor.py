"""Doctor rules, fed recorded inputs where this machine can record them.

Recorded on this machine (see docs/doctor.md for the commands): tests/data/probe/*.json (probe
outputs on the host and in CPU and CUDA containers without GPUs, `docker info`) and
tests/data/errors/*.txt (docker's own error texts). No GPU machine was available for
recording, so GPU-side inputs are DOCUMENTED EXAMPLES, marked as such where they are built:
nvidia-smi CSV rows follow NVIDIA's documented `--format=csv,noheader,nounits` layout, and the
probe reports of GPU runs are recorded reports with the GPU fields filled in the probe's format.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from envkit import doctor
from envkit.doctor import Check, HostFacts, HostGpu
from envkit.errors import ContainerStartFailed, EngineUnavailable, EnvkitError, ProgramTimedOut
from envkit.gpu.fit import alternatives
from envkit.gpu.host import GpuHost

DATA = Path(__file__).resolve().parents[1] / "data"
PROBES = DATA / "probe"
ERRORS = DATA / "errors"


def suggest(entry, gpus, driver, entries):
    """The entries doctor offers instead of `entry` on a host with these GPUs and driver."""
    return alternatives(entry, GpuHost(tuple(gpus), driver), entries)


def recorded(name: str) -> dict:
    return json.loads((PROBES / name).read_text())


def error_text(name: str) -> str:
    return (ERRORS / name).read_text()


@dataclass(frozen=True)
class Entry:
    """Stand-in with the matrix Entry's attribute names (the doctor duck-types entries)."""

    name: str
    torch: str
    cuda: str | None
    python: str = "3.10"
    torchvision: str | None = None
    torchaudio: str | None = None
    cudnn: str | None = None
    flavour: str = "runtime"
    base_image: str = "python:3.10-slim"
    index_url: str | None = None
    aliases: tuple = ()
    pins: tuple = ()


TORCH14 = Entry("torch1.4-cuda10.1", "1.4.0", "10.1", python="3.7")
TORCH16 = Entry("torch1.6-cuda10.2", "1.6.0", "10.2", python="3.8")
TORCH17 = Entry("torch1.7-cuda11.0", "1.7.1", "11.0", python="3.8")
TORCH113 = Entry("torch1.13-cuda11.7", "1.13.1", "11.7")
TORCH113_CPU = Entry("torch1.13-cpu", "1.13.1", None)
TORCH20 = Entry("torch2.0-cuda11.8", "2.0.1", "11.8")
TORCH21 = Entry("torch2.1-cuda12.1", "2.1.2", "12.1", python="3.11")
TORCH213_CPU = Entry("torch2.13-cpu", "2.13.0", None, python="3.11")
TORCH214 = Entry("torch2.14-cuda13", "2.14.1", "13.0", python="3.11", torchvision="0.29.1")
ALL = [TORCH14, TORCH16, TORCH17, TORCH113, TORCH113_CPU, TORCH20, TORCH21, TORCH213_CPU, TORCH214]


@pytest.fixture
def facts():
    """The fact tables the rules read."""
    from envkit import facts as real

    return real


def by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


# Documented examples: rows in nvidia-smi's `--query-gpu=index,name,memory.total,compute_cap,
# driver_version,mig.mode.current --format=csv,noheader,nounits` layout.
H100 = "0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled\n"
A100 = "0, NVIDIA A100-SXM4-80GB, 81920, 8.0, 535.104.05, Disabled\n"
A100_MIG = "0, NVIDIA A100-SXM4-80GB, 81920, 8.0, 535.104.05, Enabled\n"
V100_418 = "0, Tesla V100-SXM2-16GB, 16160, 7.0, 418.87.01, [N/A]\n"
TWO_RTX = (
    "0, NVIDIA GeForce RTX 3090, 24576, 8.6, 550.54.15, [N/A]\n"
    "1, NVIDIA GeForce RTX 3090, 24576, 8.6, 550.54.15, [N/A]\n"
)
# Documented /proc/driver/nvidia/version first line (proprietary and open kernel modules).
PROC_550 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
)
PROC_OPEN_535 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.104.05  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Sat Aug 19 01:13:04 UTC 2023\n"
)

DOCKER_INFO = recorded("docker-info-bookworm.json")
GIB8 = 8 * 1024**3


def gpu_docker_info(**extra) -> dict:
    """The recorded docker info with the nvidia runtime registered, as the toolkit does."""
    info = copy.deepcopy(DOCKER_INFO)
    info["Runtimes"]["nvidia"] = {"path": "nvidia-container-runtime"}
    info.update(extra)
    return info


def gpus_of(csv_text: str) -> list[HostGpu]:
    return doctor.parse_nvidia_smi(csv_text)


# ------------------------------------------------------------------------------ error texts


@pytest.mark.parametrize(
    "text, words_in_fix",
    [
        (error_text("docker-run-gpus-no-toolkit.txt"), "nvidia-ctk runtime configure"),
        (error_text("engine-run-gpus-no-toolkit.txt"), "nvidia-ctk runtime configure"),
        (error_text("docker-run-runtime-nvidia.txt"), "nvidia-ctk runtime configure"),
        (error_text("docker-cli-no-daemon.txt"), "systemctl start docker"),
        (error_text("engine-info-no-daemon.txt"), "systemctl start docker"),
        (error_text("docker-cli-permission-denied.txt"), "usermod -aG docker"),
        # Documented texts of failures this machine cannot produce:
        (
            "docker: Error response from daemon: failed to create task for container: failed "
            "to create shim task: OCI runtime create failed: runc create failed: unable to start "
            "container process: error during container init: error running hook #0: error "
            "running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\n"
            "nvidia-container-cli: initialization error: load library failed: "
            "libnvidia-ml.so.1: cannot open shared object file: no such file or directory",
            "no-cgroups",
        ),
        (
            "RuntimeError: cuda runtime error (35) : CUDA driver version is insufficient for "
            "CUDA runtime version at /pytorch/aten/src/THC/THCGeneral.cpp:50",
            "upgrade the host's NVIDIA driver",
        ),
        (
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            "arch list",
        ),
        ("Failed to initialize NVML: Driver/library version mismatch", "reboot"),
        # The toolkit wraps the same mismatch in its initialisation error at container start.
        (
            "docker: Error response from daemon: failed to create shim task: OCI runtime create "
            "failed: runc create failed: unable to start container process: error during "
            "container init: error running hook #0: error running hook: exit status 1, stdout: "
            ", stderr: nvidia-container-cli: initialization error: nvml error: driver/library "
            "version mismatch: unknown.",
            "unload and reload the nvidia kernel modules",
        ),
        # An image that declares NVIDIA_REQUIRE_CUDA (nvidia/cuda bases) on an older driver.
        (
            "docker: Error response from daemon: failed to create shim task: OCI runtime create "
            "failed: runc create failed: unable to start container process: error during "
            "container init: error running hook #0: error running hook: exit status 1, stdout: "
            ", stderr: Auxiliary ld.so.cache updated\nnvidia-container-cli: requirement error: "
            "unsatisfied condition: cuda>=12.2, please update your driver to a newer version, "
            "or use an earlier cuda container: unknown.",
            "upgrade the host's NVIDIA driver",
        ),
        (
            "docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
            "--gpus instead of --runtime=nvidia",
        ),
    ],
)
def test_known_errors_are_explained_with_a_fix(text, words_in_fix):
    explained = doctor.explain_error(text)
    assert explained is not None, text
    detail, fix = explained
    assert detail and "\n" not in detail
    assert words_in_fix in fix


def test_each_known_error_gets_its_own_explanation():
    texts = [
        'could not select device driver "" with capabilities: [[gpu]]',
        "nvidia-container-cli: initialization error",
        "CUDA driver version is insufficient for CUDA runtime version",
        "no kernel image is available for execution on the device",
        "Failed to initialize NVML: Driver/library version mismatch",
        "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.2",
        "unknown or invalid runtime name: nvidia",
        "permission denied while trying to connect to the Docker daemon socket at "
        "unix:///var/run/docker.sock",
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
    ]
    details = [doctor.explain_error(t)[0] for t in texts]
    assert len(set(details)) == len(texts)


def test_unknown_text_is_not_explained():
    assert doctor.explain_error("segmentation fault (core dumped)") is None
    # Other toolkit requirements are not about the driver's CUDA version.
    assert doctor.explain_error("requirement error: unsatisfied condition: brand = tesla") is None
    assert doctor.explain_error("") is None


# --------------------------------------------------------------------------- nvidia-smi


def test_parse_nvidia_smi_rows():
    gpus = gpus_of(TWO_RTX)
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0] == HostGpu(0, "NVIDIA GeForce RTX 3090", 24576, "8.6", "550.54.15", None)


def test_parse_nvidia_smi_mig_and_missing_fields(facts):
    (gpu,) = gpus_of(A100_MIG)
    assert gpu.mig == "Enabled"
    # An old driver without compute_cap: the capability comes from the known-models table.
    (old,) = gpus_of("0, Tesla V100-SXM2-16GB, 16160, [N/A], 418.87.01, [N/A]\n")
    assert old.capability == facts.gpu_model_for("Tesla V100-SXM2-16GB").capability == "7.0"
    assert old.mig is None


def test_parse_nvidia_smi_ignores_chatter():
    assert gpus_of("No devices were found\n") == []


def test_parse_proc_driver_version():
    assert doctor.parse_proc_driver(PROC_550) == "550.54.15"
    assert doctor.parse_proc_driver(PROC_OPEN_535) == "535.104.05"
    assert doctor.parse_proc_driver(None) is None


# ---------------------------------------------------------------------------- host checks


def test_this_cpu_host_recorded_passes_without_failures():
    checks = by_id(
        doctor.host_checks(DOCKER_INFO, None, doctor.NVIDIA_SMI_MISSING, 25 * 1024**3, [])
    )
    assert checks["engine"].status == "pass"
    assert "20.10.24" in checks["engine"].detail
    assert checks["gpu-runtime"].status == "skip"
    assert checks["driver"].status == "warn"
    assert "only CPU-only entries" in checks["driver"].detail
    assert checks["shm"].status == "pass"
    assert all(c.status != "fail" for c in checks.values())


def test_engine_missing_daemon_is_a_failure_with_the_fix():
    _kind, message, fix = error_text("engine-info-no-daemon.txt").splitlines()
    exc = EngineUnavailable(message, fix)
    (engine, *_rest) = doctor.host_checks(exc, None, doctor.NVIDIA_SMI_MISSING, None, [])
    assert engine.status == "fail"
    assert "no Docker daemon is answering" in engine.detail
    assert "systemctl start docker" in engine.fix
    assert "systemctl --user start docker" in engine.fix  # rootless users get their command


def test_engine_socket_permission_denied():
    exc = EngineUnavailable(error_text("docker-cli-permission-denied.txt").strip(), None)
    engine = doctor.host_checks(exc, None, None, None, [])[0]
    assert engine.status == "fail"
    assert "usermod -aG docker" in engine.fix


def test_engine_unexplained_error_keeps_the_engines_fix():
    engine = doctor.host_checks(
        EnvkitError("TLS handshake timeout", "check DOCKER_HOST"), None, None, None, []
    )[0]
    assert engine.status == "fail"
    assert engine.fix == "check DOCKER_HOST"


def test_gpu_host_with_nvidia_runtime_passes():
    checks = by_id(doctor.host_checks(gpu_docker_info(), H100, None, 32 * 1024**3, []))
    assert checks["gpu-runtime"].status == "pass"
    assert "nvidia runtime registered" in checks["gpu-runtime"].detail
    assert checks["driver"].status == "pass"
    assert "550.54.15" in checks["driver"].detail
    assert checks["gpu0"].status == "pass"
    assert "sm_90" in checks["gpu0"].detail and "80 GiB" in checks["gpu0"].detail


def test_gpu_host_without_any_runtime_fails_with_toolkit_fix():
    checks = by_id(doctor.host_checks(DOCKER_INFO, H100, None, GIB8, []))
    runtime = checks["gpu-runtime"]
    assert runtime.status == "fail"
    assert "/etc/cdi" in runtime.detail
    assert "nvidia-container-toolkit" in runtime.fix


def test_cdi_spec_or_toolkit_binary_counts_as_a_runtime():
    cdi = doctor.host_checks(DOCKER_INFO, H100, None, GIB8, ["/etc/cdi/nvidia.yaml"])
    assert by_id(cdi)["gpu-runtime"].status == "pass"
    other_cdi = doctor.host_checks(DOCKER_INFO, H100, None, GIB8, ["/etc/cdi/amd.json"])
    assert by_id(other_cdi)["gpu-runtime"].status == "fail"
    hook = doctor.host_checks(
        DOCKER_INFO, H100, None, GIB8, [], toolkit=["/usr/bin/nvidia-container-runtime-hook"]
    )
    assert by_id(hook)["gpu-runtime"].status == "pass"


def test_docker_desktop_on_linux_has_no_gpu():
    info = gpu_docker_info(OperatingSystem="Docker Desktop", KernelVersion="6.6.31-linuxkit")
    runtime = by_id(doctor.host_checks(info, H100, None, GIB8, []))["gpu-runtime"]
    assert runtime.status == "fail"
    assert "Docker Desktop" in runtime.detail
    assert "docker context use default" in runtime.fix
    # Docker Desktop's WSL2 backend on Windows does pass GPUs through.
    wsl = gpu_docker_info(OperatingSystem="Docker Desktop", KernelVersion="5.15.153.1-microsoft")
    assert by_id(doctor.host_checks(wsl, H100, None, GIB8, []))["gpu-runtime"].status == "pass"


def test_docker_desktop_without_a_gpu_is_no_failure():
    # A Mac, or a PC with no NVIDIA GPU: CPU-only entries run fine in Docker Desktop's VM.
    info = gpu_docker_info(OperatingSystem="Docker Desktop", KernelVersion="6.10.14-linuxkit")
    checks = by_id(doctor.host_checks(info, None, doctor.NVIDIA_SMI_MISSING, GIB8, []))
    assert checks["gpu-runtime"].status == "skip"
    assert "Docker Desktop" in checks["gpu-runtime"].detail
    assert not any(c.status == "fail" for c in checks.values())


def test_rootless_docker_with_gpus_warns_about_cgroups():
    info = gpu_docker_info(SecurityOptions=["name=seccomp,profile=builtin", "name=rootless"])
    checks = by_id(doctor.host_checks(info, H100, None, GIB8, []))
    assert "rootless" in checks["engine"].detail
    assert checks["gpu-runtime"].status == "warn"
    assert "no-cgroups" in checks["gpu-runtime"].fix


def test_driver_library_mismatch_fails_with_reboot():
    driver = by_id(
        doctor.host_checks(
            gpu_docker_info(),
            None,
            "Failed to initialize NVML: Driver/library version mismatch\n"
            "NVML library version: 550.90",
            GIB8,
            [],
        )
    )["driver"]
    assert driver.status == "fail"
    assert "reboot" in driver.fix
    # Both of nvidia-smi's lines: the cause, then the library's version.
    assert driver.detail.endswith(
        ": Failed to initialize NVML: Driver/library version mismatch; NVML library version: 550.90"
    )


def test_kernel_module_and_nvidia_smi_disagreeing_is_a_mismatch():
    driver = by_id(
        doctor.host_checks(gpu_docker_info(), A100, None, GIB8, [], proc_driver_text=PROC_550)
    )["driver"]
    assert driver.status == "fail"
    assert "550.54.15" in driver.detail and "535.104.05" in driver.detail
    assert driver.detail.startswith("the loaded NVIDIA kernel module and the user-space")
    assert "reboot" in driver.fix


def test_other_nvidia_smi_failure_is_reported():
    text = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make "
        "sure that the latest NVIDIA driver is installed and running."
    )
    driver = by_id(doctor.host_checks(gpu_docker_info(), None, text, GIB8, []))["driver"]
    assert driver.status == "fail"
    assert "modprobe nvidia" in driver.fix


def test_driver_loaded_without_nvidia_smi_warns():
    driver = by_id(
        doctor.host_checks(
            DOCKER_INFO, None, doctor.NVIDIA_SMI_MISSING, GIB8, [], proc_driver_text=PROC_550
        )
    )["driver"]
    assert driver.status == "warn"
    assert "550.54.15" in driver.detail


def test_mig_enabled_gpu_warns():
    gpu = by_id(doctor.host_checks(gpu_docker_info(), A100_MIG, None, GIB8, []))["gpu0"]
    assert gpu.status == "warn"
    assert "-mig 0" in gpu.fix


def test_small_shm_warns():
    shm = by_id(doctor.host_checks(DOCKER_INFO, None, None, 64 * 1024**2, []))["shm"]
    assert shm.status == "warn"
    assert "64 MiB" in shm.detail


# --------------------------------------------------------------------------- static checks


def test_torch113_on_h100_predicts_no_kernel_image_and_suggests_a_covering_entry(facts):
    checks = by_id(doctor.static_checks(TORCH113, gpus_of(H100), "550.54.15", ALL))
    arch = checks["arch"]
    assert arch.status == "fail"
    assert "no kernel image is available" in arch.detail
    assert "sm_90" in arch.detail
    assert checks["driver-for-cuda"].status == "pass"
    suggested = suggest(TORCH113, gpus_of(H100), "550.54.15", ALL)
    assert suggested, "an entry covering sm_90 exists"
    assert suggested[0] is TORCH20  # nearest newer torch whose build covers sm_90
    for entry in suggested:
        assert facts.kernel_supports(facts.arch_list(entry.torch, entry.cuda), "9.0")
    assert TORCH20.name in arch.fix


def test_torch16_on_a100_fails():
    arch = by_id(doctor.static_checks(TORCH16, gpus_of(A100), "535.104.05", ALL))["arch"]
    assert arch.status == "fail"
    assert "sm_80" in arch.detail
    assert "no kernel image" in arch.detail


def test_old_driver_for_cuda_118_fails_and_suggests_what_418_can_run(facts):
    checks = by_id(doctor.static_checks(TORCH20, gpus_of(V100_418), "418.87.01", ALL))
    driver = checks["driver-for-cuda"]
    assert driver.status == "fail"
    assert "418.87.01" in driver.detail
    assert "CUDA driver version is insufficient" in driver.detail
    assert f">= {facts.min_driver_for('11.8')}" in driver.fix
    # Only CUDA 10.1 runs on a 418 driver; nothing newer does, so the older torch is offered.
    suggested = suggest(TORCH20, gpus_of(V100_418), "418.87.01", ALL)
    assert [e.name for e in suggested] == [TORCH14.name]
    assert TORCH14.name in driver.fix


def test_driver_between_compat_floor_and_toolkit_driver_warns_and_is_suggested(facts):
    # torch 2.8 + CUDA 12.8 wheels on the 535 LTS driver common on H100 clusters: below the
    # toolkit's own driver, above the 12.x minor-version-compatibility floor (525).
    entry = Entry("torch2.8-cuda12.8", "2.8.0", "12.8", python="3.12")
    assert facts.driver_version(facts.min_driver_for(entry.cuda)) > (535, 104, 5)
    driver = by_id(doctor.static_checks(entry, gpus_of(H100), "535.104.05", ALL))["driver-for-cuda"]
    assert driver.status == "warn"
    assert "minor-version compatibility" in driver.detail
    assert f">= {facts.min_driver_for(entry.cuda)}" in driver.fix
    # ... and an entry the driver can run is offered when another entry fails on this host.
    assert entry in suggest(TORCH113, gpus_of(H100), "535.104.05", [entry])
    # Below the floor it fails and names the floor.
    below = by_id(doctor.static_checks(entry, gpus_of(H100), "520.61.05", ALL))["driver-for-cuda"]
    assert below.status == "fail" and "525" in below.detail


def test_cuda_11_0_runs_on_its_own_driver_below_the_11x_compat_floor(facts):
    # 11.0's own driver (450.51.05) is older than the 11.x compatibility floor (450.80.02).
    driver = by_id(doctor.static_checks(TORCH17, gpus_of(A100), "450.51.06", ALL))[
        "driver-for-cuda"
    ]
    assert driver.status == "pass"
    assert TORCH17 in suggest(TORCH16, gpus_of(A100), "450.51.06", [TORCH17])


def test_a_gpu_only_ptx_covers_fails_below_the_toolkit_driver(facts, monkeypatch):
    # Minor-version compatibility cannot JIT newer PTX: a build whose only code for sm_90 is
    # compute_80 PTX needs CUDA 12.8's own driver on an H100, not just the 12.x floor.
    entry = Entry("torch2.8-cuda12.8", "2.8.0", "12.8", python="3.12")
    real = facts.arch_list
    monkeypatch.setattr(
        facts,
        "arch_list",
        lambda torch, cuda: ("sm_80", "compute_80") if torch == "2.8.0" else real(torch, cuda),
    )
    checks = by_id(doctor.static_checks(entry, gpus_of(H100), "535.104.05", ALL))
    assert checks["driver-for-cuda"].status == "fail"
    assert "only PTX for GPU 0 (sm_90)" in checks["driver-for-cuda"].detail
    assert entry not in suggest(TORCH113, gpus_of(H100), "535.104.05", [entry])
    at_toolkit_driver = facts.min_driver_for("12.8")
    checks = by_id(doctor.static_checks(entry, gpus_of(H100), at_toolkit_driver, ALL))
    assert checks["driver-for-cuda"].status == "pass"


def test_supported_entry_passes(facts):
    checks = by_id(doctor.static_checks(TORCH20, gpus_of(H100), "550.54.15", ALL))
    assert checks["driver-for-cuda"].status == "pass"
    assert checks["arch"].status == "pass"
    assert "sm_90" in checks["arch"].detail


def test_cpu_only_entry_skips_gpu_predictions():
    checks = doctor.static_checks(TORCH113_CPU, gpus_of(H100), "550.54.15", ALL)
    assert [c.status for c in checks] == ["skip", "skip"]


def test_cuda_entry_on_host_without_driver_fails_and_suggests_cpu_entries():
    checks = by_id(doctor.static_checks(TORCH113, [], None, ALL))
    assert checks["driver-for-cuda"].status == "fail"
    assert checks["arch"].status == "skip"
    suggested = suggest(TORCH113, [], None, ALL)
    assert suggested[0] is TORCH113_CPU  # same torch major.minor first
    assert all(e.cuda is None for e in suggested)


def test_suggestions_prefer_same_minor_then_nearest_newer(facts):
    same_minor = Entry("torch1.13-cuda11.7-devel", "1.13.1", "11.7", flavour="devel")
    newer_far = TORCH21
    gpus = gpus_of(A100)
    names = [
        e.name
        for e in suggest(TORCH113, gpus, "535.104.05", [TORCH113, newer_far, TORCH20, same_minor])
    ]
    assert names == [same_minor.name, TORCH20.name, newer_far.name]


def test_suggestions_exclude_entries_the_driver_cannot_run():
    suggested = suggest(TORCH113, gpus_of(H100), "525.60.13", ALL)
    assert TORCH214 not in suggested  # CUDA 13 needs a newer driver
    assert TORCH20 in suggested


# ------------------------------------------------------------------------ container checks


def test_recorded_cpu_container_matches_cpu_entry():
    checks = by_id(doctor.container_checks(recorded("cpu-container-torch2.13.json"), TORCH213_CPU))
    assert checks["torch"].status == "pass" and "2.13.0+cpu" in checks["torch"].detail
    assert checks["python"].status == "pass"
    assert checks["cuda-build"].status == "pass"
    # doctor proves GPU use: a CPU-only entry fails that, with the reason and both ways out
    assert checks["cuda"].status == "fail"
    assert "CPU-only entry" in checks["cuda"].detail
    assert "torch.version.cuda is None" in checks["cuda"].detail
    assert "--allow-cpu" in checks["cuda"].fix and "envkit list --torch" in checks["cuda"].fix
    assert checks["dataloader"].status == "pass"
    # Docker's default /dev/shm is 64 MiB: enough for this DataLoader, risky for real ones.
    assert checks["probe-shm"].status == "warn"
    assert "--shm-size" in checks["probe-shm"].fix
    assert checks["user"].detail.startswith("uid 0, gid 0")
    assert [c.id for c in checks.values() if c.status == "fail"] == ["cuda"]


def test_recorded_cpu_container_against_a_cuda_entry_fails():
    cuda_entry = Entry("torch2.13-cuda12.8", "2.13.0", "12.8", python="3.11")
    checks = by_id(doctor.container_checks(recorded("cpu-container-torch2.13.json"), cuda_entry))
    assert checks["cuda-build"].status == "fail"
    assert checks["cuda"].status == "fail"
    assert "CPU-only build" in checks["cuda"].detail
    assert "envkit build torch2.13-cuda12.8" in checks["cuda"].fix


def test_recorded_small_shm_makes_the_dataloader_fail_with_the_fix():
    probe = recorded("cpu-container-torch2.13-shm1m-nobody.json")
    checks = by_id(doctor.container_checks(probe, TORCH213_CPU))
    loader = checks["dataloader"]
    assert loader.status == "fail"
    assert "shared memory" in loader.detail
    assert "1 MiB" in loader.detail
    assert "\n" not in loader.detail
    assert "--shm-size" in loader.fix
    assert "uid 65534" in checks["user"].detail


def test_recorded_cuda_image_without_gpus_says_why():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["torch"].status == "pass"
    assert checks["cuda-build"].status == "pass"
    assert checks["torchvision"].status == "pass"
    cuda = checks["cuda"]
    assert cuda.status == "fail"
    assert "no /dev/nvidia" in cuda.detail
    assert "--gpus all" in cuda.fix
    assert checks["gpu-kernels"].status == "skip"


def test_doctor_reason_for_not_requesting_gpus_wins():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    reason = ("no GPU requested: Docker cannot attach GPUs", doctor.TOOLKIT_FIX)
    cuda = by_id(doctor.container_checks(probe, TORCH214, no_gpu=reason))["cuda"]
    assert cuda.status == "fail"
    assert "Docker cannot attach GPUs" in cuda.detail
    assert cuda.fix == doctor.TOOLKIT_FIX


def test_recorded_host_probe_without_entry_has_no_failures():
    checks = by_id(doctor.container_checks(recorded("cpu-host-torch2.13.json")))
    assert checks["cuda"].status == "skip"
    assert checks["torchvision"].status == "skip"
    assert all(c.status != "fail" for c in checks.values())


def test_entry_version_mismatches_fail():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    wrong = Entry(
        "torch2.14-cuda12.8", "2.14.0", "12.8", python="3.12", torchvision="0.29.0", cudnn="9.1"
    )
    checks = by_id(doctor.container_checks(probe, wrong))
    for check_id in ("python", "torch", "cuda-build", "torchvision"):
        assert checks[check_id].status == "fail", check_id
        assert "envkit build torch2.14-cuda12.8" in checks[check_id].fix
    assert checks["cudnn"].status == "warn"
    right_cudnn = Entry("x", "2.14.1", "13.0", python="3.11", torchvision="0.29.1", cudnn="9.24")
    assert by_id(doctor.container_checks(probe, right_cudnn))["cudnn"].status == "pass"


def test_torch_import_failure_fails():
    probe = recorded("cpu-container-torch2.13.json")
    probe.update(torch=None, torch_error="ImportError: libcudnn.so.8: cannot open shared object")
    checks = by_id(doctor.container_checks(probe, TORCH213_CPU))
    assert checks["torch"].status == "fail"
    assert "libcudnn.so.8" in checks["torch"].detail
    assert "cuda" not in checks


def test_recorded_torch_1_1_probe_on_python_3_7_matches_its_entry(facts):
    # Real output of the probe under Python 3.7.16 with PyPI's torch 1.1.0 (CUDA 9.0 build) and
    # torchvision 0.3.0, on this GPU-less machine: the oldest stack the matrix lists.
    probe = recorded("cuda90-host-torch1.1.0-py37-nogpu.json")
    entry = Entry("torch1.1-cuda9", "1.1.0", "9.0", python="3.7", torchvision="0.3.0")
    entry = replace(entry, cudnn="7.5.1")
    checks = by_id(doctor.container_checks(probe, entry))
    for check_id in ("probe", "python", "torch", "cuda-build", "cudnn", "torchvision"):
        assert checks[check_id].status == "pass", checks[check_id]
    assert probe["cuda"]["arch_list"] is None  # torch 1.1 has no get_arch_list()
    assert checks["cuda"].status == "fail" and "/dev/nvidia" in checks["cuda"].detail
    assert checks["dataloader"].status == "pass"


@pytest.mark.parametrize(
    "name, entry_name",
    [
        # Real probe outputs from images `envkit build` made from PyPI's wheels (no GPU here).
        ("cuda90-container-torch1.0.1-py37-nogpu.json", "torch1.0-cuda9"),
        ("cuda90-container-torch1.1.0-py37-nogpu.json", "torch1.1-cuda9"),
        ("cuda100-container-torch1.2.0-py37-nogpu.json", "torch1.2-cuda10"),
        ("cuda101-container-torch1.3.1-py37-nogpu.json", "torch1.3-cuda10"),
        ("cuda101-container-torch1.4.0-py38-nogpu.json", "torch1.4-cuda10"),
        ("cuda102-container-torch1.5.1-py38-nogpu.json", "torch1.5-cuda10"),
        ("cuda102-container-torch1.6.0-py38-nogpu.json", "torch1.6-cuda10"),
        ("cuda102-container-torch1.7.1-nogpu.json", "torch1.7-cuda10"),
        ("cuda102-container-torch1.8.1-nogpu.json", "torch1.8-cuda10"),
        ("cuda13-container-torch2.14-nogpu.json", "torch2.14-cuda13"),
    ],
)
def test_recorded_images_match_their_shipped_matrix_entries(name, entry_name):
    from envkit import matrix

    entry = matrix.load().get(entry_name)
    checks = by_id(doctor.container_checks(recorded(name), entry))
    for check_id in ("probe", "python", "torch", "cuda-build", "cudnn", "torchvision"):
        assert checks[check_id].status == "pass", checks[check_id]
    assert checks["cuda"].status == "fail" and "--gpus all" in checks["cuda"].fix
    assert checks["dataloader"].status == "pass"


def test_fatal_probe_fails():
    (check,) = doctor.container_checks({"fatal": "MemoryError"}, TORCH213_CPU)
    assert check.status == "fail" and "MemoryError" in check.detail


def gpu_probe(count: int = 1) -> dict:
    """Documented example: the recorded CUDA-image report with GPU fields as the probe writes
    them on a working H100 machine (not recorded: no GPU machine was available)."""
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    probe["nvidia"]["gpu_nodes"] = [f"/dev/nvidia{i}" for i in range(count)]
    probe["nvidia"]["libcuda"] = {"loaded": True, "driver_cuda": "13.0", "error": None}
    probe["cuda"].update(
        available=True, device_count=count, reason=None, detail=None, init_error=None
    )
    probe["devices"] = [
        {
            "index": i,
            "name": "NVIDIA H100 80GB HBM3",
            "capability": "9.0",
            "memory_bytes": 85520809984,
            "multi_processor_count": 132,
        }
        for i in range(count)
    ]
    ok = {"ok": True, "max_abs_error": 3.8e-06, "bound": 0.0574, "error": None}
    probe["kernels"] = [
        {"index": i, "matmul": dict(ok), "conv": dict(ok), "seconds": 0.9} for i in range(count)
    ]
    probe["nccl"] = {"available": True, "version": "2.27.7", "error": None}
    return probe


def test_working_gpus_pass_kernels_and_nccl():
    checks = by_id(doctor.container_checks(gpu_probe(2), TORCH214))
    assert checks["cuda"].status == "pass"
    assert "2 device(s)" in checks["cuda"].detail
    assert checks["gpu0-kernels"].status == "pass"
    assert checks["gpu1-kernels"].status == "pass"
    assert "sm_90" in checks["gpu0-kernels"].detail
    assert checks["nccl"].status == "pass"


def test_single_gpu_skips_nccl():
    assert by_id(doctor.container_checks(gpu_probe(1), TORCH214))["nccl"].status == "skip"


def test_missing_nccl_with_two_gpus_fails():
    probe = gpu_probe(2)
    probe["nccl"] = {"available": False, "version": None, "error": None}
    assert by_id(doctor.container_checks(probe, TORCH214))["nccl"].status == "fail"


def test_no_kernel_image_on_a_gpu_is_explained():
    probe = gpu_probe(1)
    probe["cuda"]["arch_list"] = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"]
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, None))["gpu0-kernels"]
    assert check.status == "fail"
    assert "no kernels compiled" in check.detail
    assert "arch list" in check.fix


def test_cuda_error_under_torch_2_boilerplate_is_still_explained():
    # torch 2.x appends three lines of advice under every CUDA error; the cause is above them.
    probe = gpu_probe(1)
    # The message as torch 2.9+ words it (torch/csrc/cuda: c10::AcceleratorError).
    probe["kernels"][0]["matmul"] = {
        "ok": False,
        "error": "AcceleratorError: CUDA error: no kernel image is available for execution on "
        "the device\nSearch for `cudaErrorNoKernelImageForDevice' in "
        "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html for more "
        "information.\nCUDA kernel errors might be asynchronously reported at some other API "
        "call, so the stacktrace below might be incorrect.\nFor debugging consider passing "
        "CUDA_LAUNCH_BLOCKING=1\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side "
        "assertions.\n",
    }
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert "no kernels compiled" in check.detail
    assert "matmul: AcceleratorError: CUDA error: no kernel image" in check.detail
    assert "TORCH_USE_CUDA_DSA" not in check.detail and "Search for" not in check.detail
    assert "ECC" not in check.fix


@pytest.mark.parametrize(
    "entry, why",
    [
        # torch 1.6 has no get_arch_list(); its cu102 build has no sm_90 kernels (facts say so).
        (TORCH16, "lacks sm_90"),
        # torch 1.4's own compute_37 PTX covers sm_90; the cuBLAS linked into the wheel does not.
        (TORCH14, "libraries linked into this build (cuBLAS, cuDNN) stop at sm_75"),
    ],
)
@pytest.mark.parametrize(
    "error",
    [
        "RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling "
        "`cublasSgemm( handle, opa, opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
        "RuntimeError: CUDA error: no kernel image is available for execution on the device",
    ],
)
def test_a_kernel_failure_of_old_torch_without_arch_list_is_explained_from_the_facts(
    entry, why, error
):
    probe = gpu_probe(1)
    probe["torch"]["version"] = entry.torch
    probe["cuda"]["arch_list"] = None
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, entry))["gpu0-kernels"]
    assert check.status == "fail"
    if "no kernel image" in error and entry is TORCH16:
        # CUDA's own text already says it; its generic explanation is kept.
        assert "no kernels compiled" in check.detail
    else:
        assert why in check.detail and "sm_90" in check.fix
    assert "ECC" not in check.fix


def test_a_kernel_failure_on_a_gpu_of_unknown_capability_is_still_explained():
    probe = gpu_probe(1)
    del probe["devices"][0]["capability"]
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert check.status == "fail" and "no kernels compiled" in check.detail


def test_a_host_probe_of_another_torch_is_not_blamed_on_the_entrys_libraries():
    # `envkit doctor torch1.4-cuda10 --host` on a Python with torch 2.14: a failure there says
    # nothing about torch 1.4's linked-in cuBLAS.
    probe = gpu_probe(1)
    probe["kernels"][0]["matmul"] = {"ok": False, "error": "RuntimeError: CUDA error: unknown"}
    check = by_id(doctor.container_checks(probe, TORCH14, host_probe=True))["gpu0-kernels"]
    assert check.status == "fail"
    assert "libraries" not in check.detail and "ECC" in check.fix


def test_a_counted_gpu_that_cannot_be_opened_fails_with_the_mig_way_out():
    # NVML counts whole GPUs; on a MIG host CUDA can open only the instance it was given.
    probe = gpu_probe(2)
    probe["devices"][1] = {"index": 1, "error": "AssertionError: Invalid device id"}
    probe["kernels"] = probe["kernels"][:1]
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["gpu0-kernels"].status == "pass"
    assert checks["gpu1-kernels"].status == "fail"
    assert "Invalid device id" in checks["gpu1-kernels"].detail
    assert "MIG" in checks["gpu1-kernels"].fix
    assert checks["nccl"].status == "skip"  # one usable GPU


def test_cuda_available_without_any_device_fails():
    probe = gpu_probe(1)
    probe["devices"], probe["kernels"] = [], []
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["gpu-kernels"].status == "fail"
    assert not any(c.status == "pass" for c in checks.values() if "kernels" in c.id)


def test_no_cuda_gpus_mentions_mig_instances():
    detail, fix = doctor.explain_error("RuntimeError: No CUDA GPUs are available")
    assert "MIG" in detail and "nvidia-smi mig" in fix


def test_wrong_gpu_result_fails():
    probe = gpu_probe(1)
    probe["kernels"][0]["conv"] = {"ok": False, "max_abs_error": 4.2, "bound": 0.05, "error": None}
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert check.status == "fail"
    assert "4.2" in check.detail
    assert "ECC" in check.fix


def test_driver_too_old_in_container_names_the_minimum(facts):
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    probe["nvidia"]["gpu_nodes"] = ["/dev/nvidia0"]
    probe["cuda"].update(
        reason="driver_too_old",
        detail="CUDA initialization: The NVIDIA driver on your system is too old (found version "
        "12020).",
    )
    cuda = by_id(doctor.container_checks(probe, TORCH214))["cuda"]
    assert cuda.status == "fail"
    assert "too old" in cuda.detail
    assert facts.min_driver_for("13.0") in cuda.fix


def test_bad_visible_devices_in_container():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    probe["cuda"].update(
        reason="bad_visible_devices", detail="CUDA_VISIBLE_DEVICES=-1 hides every GPU"
    )
    cuda = by_id(doctor.container_checks(probe, TORCH214))["cuda"]
    assert cuda.status == "fail"
    assert "unset CUDA_VISIBLE_DEVICES" in cuda.fix


def test_parse_probe_output_tolerates_noise_before_the_document():
    text = (PROBES / "cpu-container-torch2.13.json").read_text()
    assert doctor.parse_probe_output(text)["python"] == "3.11.2"
    assert doctor.parse_probe_output("banner from the entrypoint\n" + text)["python"] == "3.11.2"
    assert doctor.parse_probe_output("Segmentation fault (core dumped)\n") is None
    assert doctor.parse_probe_output("") is None


# ------------------------------------------------------------------------------- reports


def test_report_json_has_ok_and_checks():
    report = doctor.DoctorReport(
        False, [Check("engine", "fail", "x", "y"), Check("shm", "pass", "z")]
    )
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["checks"][0] == {"id": "engine", "status": "fail", "detail": "x", "fix": "y"}
    text = report.to_text()
    assert "fix: y" in text and "FAILED" in text


def test_check_rejects_unknown_status():
    with pytest.raises(ValueError):
        Check("x", "ok", "detail")


# --------------------------------------------------------------------------- orchestrator


@dataclass
class FakeResult:
    exit_code: int
    stdout: str
    stderr: str


class FakeEngine:
    """engine_info() and run_program() as envkit.engine has them, answering from recordings."""

    def __init__(self, info=DOCKER_INFO, outputs=(), images=("*",)):
        self.info = info
        self.outputs = list(outputs)
        self.calls = []
        self.images = images

    def engine_info(self):
        if isinstance(self.info, Exception):
            raise self.info
        return self.info

    def image_id(self, ref):
        return "sha256:1" if "*" in self.images or ref in self.images else None

    def run_program(self, image, program, args=(), *, gpus=None, shm_size=None, timeout=600, **_):
        self.calls.append({"image": image, "program": program, "gpus": gpus})
        out = self.outputs.pop(0)
        if isinstance(out, Exception):
            raise out
        return out


CPU_HOST = HostFacts(None, doctor.NVIDIA_SMI_MISSING, 25 * 1024**3, [], [], None)
H100_HOST = HostFacts(H100, None, 32 * 1024**3, [], [], PROC_550)


def probe_result(name: str) -> FakeResult:
    return FakeResult(0, (PROBES / name).read_text(), "")


def test_orchestrator_unreachable_engine_fails_and_skips_the_image():
    engine = FakeEngine(info=EngineUnavailable("no Docker daemon is answering at unix:///x", "s"))
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert report.ok is False
    checks = by_id(report.checks)
    assert checks["engine"].status == "fail"
    assert checks["image"].status == "skip"
    assert engine.calls == []


def test_orchestrator_cpu_entry_runs_the_probe_without_gpus():
    engine = FakeEngine(outputs=[probe_result("cpu-container-torch2.13.json")])
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    assert engine.calls[0]["image"] == "envkit/torch2.13-cpu:latest"
    assert engine.calls[0]["program"] == doctor.PROBE_PATH
    assert report.ok is False  # no GPU: the one failure is cuda
    assert by_id(report.checks)["torch"].status == "pass"
    accepted = doctor.run_doctor(
        TORCH213_CPU,
        engine=FakeEngine(outputs=[probe_result("cpu-container-torch2.13.json")]),
        host=CPU_HOST,
        all_entries=ALL,
        allow_cpu=True,
    )
    assert accepted.ok is True and by_id(accepted.checks)["cuda"].status == "warn"
    assert json.loads(report.to_json())["probe"]["python"] == "3.11.2"


def test_orchestrator_cuda_entry_on_cpu_host_still_checks_the_image():
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    checks = by_id(report.checks)
    assert report.ok is False
    assert checks["driver-for-cuda"].status == "fail"
    assert checks["torch"].status == "pass"  # the image's own facts were still checked
    assert checks["cuda"].status == "fail"
    assert "no NVIDIA GPU on this host" in checks["cuda"].detail
    # No CPU entry as new as torch 2.14 exists, so the nearest older ones are offered.
    assert report.suggestions == [TORCH213_CPU.name, TORCH113_CPU.name]


def test_allow_cpu_accepts_a_cuda_entry_on_a_host_without_a_driver():
    """What the shipped CI workflow runs on GPU-less runners for every CUDA entry."""
    report = doctor.run_doctor(
        TORCH214,
        engine=FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]),
        host=CPU_HOST,
        all_entries=ALL,
        allow_cpu=True,
    )
    checks = by_id(report.checks)
    assert report.ok is True, [c for c in report.checks if c.status == "fail"]
    assert checks["driver-for-cuda"].status == "warn"
    assert checks["cuda"].status == "warn"
    assert checks["torch"].status == "pass"


def test_allow_cpu_does_not_excuse_a_driver_that_is_too_old():
    old_driver = replace(H100_HOST, proc_driver_text=PROC_550.replace("550.", "410."))
    report = doctor.run_doctor(
        TORCH214,
        engine=FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]),
        host=replace(old_driver, nvidia_smi_output=H100.replace("550.", "410.")),
        all_entries=ALL,
        allow_cpu=True,
    )
    assert by_id(report.checks)["driver-for-cuda"].status == "fail"
    assert report.ok is False


def test_orchestrator_gpu_host_without_runtime_does_not_request_gpus():
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    cuda = by_id(report.checks)["cuda"]
    assert cuda.status == "fail"
    assert "Docker cannot attach GPUs" in cuda.detail
    assert cuda.fix == doctor.TOOLKIT_FIX


def test_orchestrator_gpu_refused_by_engine_retries_without_gpus():
    refused = ContainerStartFailed(
        error_text("engine-run-gpus-no-toolkit.txt").splitlines()[1], "x"
    )
    engine = FakeEngine(
        info=gpu_docker_info(),
        outputs=[refused, probe_result("cuda13-container-torch2.14-nogpu.json")],
    )
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert [c["gpus"] for c in engine.calls] == ["all", None]
    checks = by_id(report.checks)
    assert checks["gpu-attach"].status == "fail"
    assert "could not select device driver" in checks["gpu-attach"].detail
    assert checks["cuda"].status == "fail"
    assert "NVIDIA Container Toolkit" in checks["cuda"].detail
    assert checks["torch"].status == "pass"


def test_orchestrator_probe_timeout_with_gpus_is_not_a_refusal():
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert [c["gpus"] for c in engine.calls] == ["all"]  # no second run without GPUs
    checks = by_id(report.checks)
    assert "gpu-attach" not in checks
    assert checks["probe"].status == "fail"
    assert "did not finish within 600s with the GPUs attached" in checks["probe"].detail
    assert report.ok is False


def test_probe_timeout_on_a_ptx_only_gpu_names_the_jit(facts, monkeypatch):
    # A build whose only code for sm_90 is compute_80 PTX (its libraries are separate
    # packages): on an H100 the driver JIT-compiles the whole library at the first CUDA call.
    monkeypatch.setattr(facts, "arch_list", lambda torch, cuda: ("sm_80", "compute_80"))
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    probe = by_id(report.checks)["probe"]
    assert probe.status == "fail"
    assert "only PTX for sm_90" in probe.detail
    assert "ComputeCache" in probe.fix


def test_probe_timeout_of_torch_1_4_on_an_h100_does_not_promise_a_jit_cache(facts):
    # torch 1.4's compute_37 PTX covers sm_90, but its linked-in cuBLAS/cuDNN have no code for
    # it: a JIT cache cannot make it work, so the timeout is not explained that way.
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH14, engine=engine, host=H100_HOST, all_entries=ALL)
    checks = by_id(report.checks)
    assert checks["probe"].status == "fail"
    assert "PTX" not in checks["probe"].detail and "ComputeCache" not in checks["probe"].fix
    assert checks["arch"].status == "fail" and "cuBLAS" in checks["arch"].detail


def test_orchestrator_engine_lost_during_gpu_probe_is_not_a_refusal():
    lost = EngineUnavailable("lost the Docker engine while python3 ran: reset", "check dockerd")
    engine = FakeEngine(info=gpu_docker_info(), outputs=[lost])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert len(engine.calls) == 1
    checks = by_id(report.checks)
    assert "gpu-attach" not in checks
    assert checks["image"].status == "fail" and "lost the Docker engine" in checks["image"].detail


def test_orchestrator_gpu_host_with_runtime_requests_all_gpus():
    engine = FakeEngine(
        info=gpu_docker_info(), outputs=[FakeResult(0, json.dumps(gpu_probe(1)), "")]
    )
    report = doctor.run_doctor(
        TORCH214,
        engine=engine,
        host=H100_HOST,
        all_entries=ALL,
        image="registry.example/envkit/torch2.14-cuda13:abc",
    )
    assert engine.calls[0]["gpus"] == "all"
    assert engine.calls[0]["image"] == "registry.example/envkit/torch2.14-cuda13:abc"
    checks = by_id(report.checks)
    assert checks["gpu-attach"].status == "pass"
    assert checks["gpu0-kernels"].status == "pass"


def test_orchestrator_missing_image_says_build_it():
    engine = FakeEngine(images=())
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    image = by_id(report.checks)["image"]
    assert image.status == "fail"
    assert image.fix == "build it: envkit build torch2.13-cpu"
    assert engine.calls == []


def test_orchestrator_probe_without_json_is_a_failure():
    engine = FakeEngine(outputs=[FakeResult(139, "", "Segmentation fault (core dumped)\n")])
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    probe = by_id(report.checks)["probe"]
    assert probe.status == "fail"
    assert "exit code 139" in probe.detail and "Segmentation fault" in probe.detail


def test_orchestrator_host_only_does_not_run_containers():
    engine = FakeEngine()
    report = doctor.run_doctor(engine=engine, host=CPU_HOST)
    assert report.ok is True
    assert engine.calls == []
    assert {c.id for c in report.checks} == {"engine", "gpu-runtime", "driver", "shm"}


@pytest.mark.parametrize("contained, where", [(True, "container:"), (False, "host:")])
def test_orchestrator_host_probe_runs_this_python(tmp_path, contained, where):
    # A stand-in interpreter that prints the recorded host report, as the probe would. That
    # recording was made on a machine that is itself a container; `--host` trusts the probe.
    recorded = json.loads((PROBES / "cpu-host-torch2.13.json").read_text())
    assert recorded["in_container"] is True
    recorded["in_container"] = contained
    (tmp_path / "report.json").write_text(json.dumps(recorded))
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\ncat {tmp_path / 'report.json'}\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    report = doctor.run_doctor(
        TORCH213_CPU, host_probe=True, host=CPU_HOST, all_entries=ALL, python=str(fake_python)
    )
    checks = by_id(report.checks)
    assert checks["engine"].status == "skip"
    assert checks["torch"].status == "pass"
    assert checks["probe-shm"].detail.startswith(where)
    assert report.ok is False and checks["cuda"].status == "fail"


# ------------------------------------------------------------------------------- gatherers


def _fake_nvidia_smi(tmp_path: Path, script: str) -> str:
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return f"{tmp_path}{os.pathsep}{os.environ['PATH']}"


def test_run_nvidia_smi_keeps_the_gpus_listed_around_one_that_failed(tmp_path, monkeypatch):
    # A GPU off the bus: nvidia-smi lists the others, says why on stdout or stderr, exits 15.
    script = (
        "echo '0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled'\n"
        "echo 'Unable to determine the device handle for GPU1: 0000:1B:00.0: Unknown Error'\n"
        "echo '2, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled'\n"
        "echo 'Unable to determine the device handle for GPU3: 0000:1C:00.0: GPU is lost' >&2\n"
        "exit 15\n"
    )
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, script))
    output, error = doctor.run_nvidia_smi()
    assert [g.index for g in doctor.parse_nvidia_smi(output)] == [0, 2]
    assert error.splitlines() == [
        "Unable to determine the device handle for GPU1: 0000:1B:00.0: Unknown Error",
        "Unable to determine the device handle for GPU3: 0000:1C:00.0: GPU is lost",
    ]
    checks = by_id(
        doctor.host_checks(DOCKER_INFO, output, error, 2**30, [], proc_driver_text=PROC_550)
    )
    assert checks["driver"].status == "fail"
    assert "listed 2 GPU(s)" in checks["driver"].detail and "GPU is lost" in checks["driver"].detail
    assert "Xid" in checks["driver"].fix
    assert checks["gpu0"].status == "pass" and checks["gpu2"].status == "pass"


def test_run_nvidia_smi_drops_fields_an_old_driver_rejects(tmp_path, monkeypatch):
    # Documented behaviour of nvidia-smi before 510: an unknown field fails the whole query.
    script = (
        'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to '
        "query.'; exit 2;; esac\n"
        "echo '0, Tesla V100-SXM2-16GB, 16160, 418.87.01, [N/A]'\n"
    )
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, script))
    output, error = doctor.run_nvidia_smi()
    assert error is None
    (gpu,) = doctor.parse_nvidia_smi(output)
    assert gpu.driver == "418.87.01"
    assert gpu.capability == "7.0"  # from the model table, since the driver could not say


def test_run_nvidia_smi_reports_mismatch_text(tmp_path, monkeypatch):
    script = "echo 'Failed to initialize NVML: Driver/library version mismatch'; exit 18\n"
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, script))
    output, error = doctor.run_nvidia_smi()
    assert output is None
    assert "Driver/library version mismatch" in error


def test_run_nvidia_smi_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, "sleep 5\n"))
    output, error = doctor.run_nvidia_smi(timeout=0.5)
    assert output is None and "did not answer" in error


def test_gather_host_on_this_machine():
    facts = doctor.gather_host()
    st = os.statvfs("/dev/shm")
    assert facts.shm_bytes == st.f_frsize * st.f_blocks
    if not any(
        os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
        for d in os.environ["PATH"].split(os.pathsep)
    ):
        assert facts.nvidia_smi_output is None
        assert facts.nvidia_smi_error == doctor.NVIDIA_SMI_MISSING


def test_doctor_module_does_not_import_torch():
    import subprocess

    code = "import sys, envkit.doctor; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_cli_static_check_on_an_h100_predicts_no_kernel_image_and_suggests(tmp_path, monkeypatch):
    # nvidia-smi's documented CSV for one H100 (no GPU machine is available to record one).
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, f"printf '{H100}'\n"))
    from click.testing import CliRunner

    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", "torch1.13-cuda11", "--static", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["arch"]["status"] == "fail"
    assert "no kernel image is available" in checks["arch"]["detail"]
    assert "sm_90" in checks["arch"]["detail"] or "9.0" in checks["arch"]["detail"]
    assert checks["driver-for-cuda"]["status"] == "pass"  # 550 is new enough for CUDA 11.7
    from envkit import facts, matrix

    assert report["suggestions"], "entries that work on this host are named"
    for name in report["suggestions"]:
        entry = matrix.load().get(name)
        assert entry.cuda is None or facts.kernel_supports(
            facts.arch_list(entry.torch, entry.cuda), "9.0"
        )


def test_cli_static_check_fails_a_torch_1_4_build_on_an_h100_despite_its_ptx(tmp_path, monkeypatch):
    # torch 1.4.0+cu101 ships sm_37..sm_75 and compute_37 PTX for its own kernels, but the
    # cuBLAS/cuDNN/cuFFT linked into the wheel stop at sm_75 with no PTX (scripts/fatbin_archs.py
    # on the real wheel): on sm_90 matrix multiplies and convolutions cannot run.
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, f"printf '{H100}'\n"))
    from click.testing import CliRunner

    from envkit import facts, matrix
    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", "torch1.4-cuda10", "--static", "--json"])
    report = json.loads(result.output)
    arch = {c["id"]: c for c in report["checks"]}["arch"]
    assert arch["status"] == "fail" and result.exit_code == 1
    assert "cuBLAS" in arch["detail"] and "sm_75" in arch["detail"]
    assert "compute_37" in arch["detail"] and "CUBLAS_STATUS_EXECUTION_FAILED" in arch["detail"]
    assert report["suggestions"]
    for name in report["suggestions"]:
        entry = matrix.load().get(name)
        assert facts.kernel_supports(facts.arch_list(entry.torch, entry.cuda), "9.0")
        assert not facts.beyond_libraries(entry.torch, entry.cuda, "9.0"), name


@pytest.mark.parametrize(
    "name, status",
    [
        # CUDA 9.0's libraries predate Turing (pytorch/pytorch#16034, #18620), although torch's
        # own sm_70 code is binary-compatible with sm_75.
        ("torch1.0-cuda9", "fail"),
        ("torch1.4-cuda10", "pass"),  # CUDA 10.1 has Turing code
        ("torch1.6-cuda10", "pass"),
    ],
)
def test_cli_static_check_on_a_turing_gpu(tmp_path, monkeypatch, name, status):
    t4 = "0, Tesla T4, 15360, 7.5, 535.104.05, Disabled\n"
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, f"printf '{t4}'\n"))
    from click.testing import CliRunner

    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", name, "--static", "--json"])
    arch = {c["id"]: c for c in json.loads(result.output)["checks"]}["arch"]
    assert arch["status"] == status, arch
    if status == "fail":
        assert "CUDA 9.0's cuBLAS" in arch["detail"] and "up to sm_70" in arch["detail"]


def test_libraries_limit_only_the_wheels_that_link_them_in():
    from envkit import facts

    assert facts.library_limit("1.4.0", "10.1") == "7.5"
    assert facts.library_limit("1.0.1", "9.0") == "7.0"
    # From 1.6 no row is marked: the arch list alone decides (sm_80 code covers sm_86).
    assert facts.library_limit("1.7.1", "11.0") is None
    assert not facts.beyond_libraries("1.7.1", "11.0", "8.6")
    assert facts.beyond_libraries("1.5.1", "10.2", "8.0")
    assert not facts.beyond_libraries("1.5.1", "10.2", "7.5")


def test_a_host_probe_without_gpus_gets_host_fixes_not_container_ones():
    # A real probe run on a host without a GPU (torch 1.1.0 cu90, Python 3.7).
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe["in_container"] = False
    probe["cuda"]["detail"] = (  # what the probe itself now says outside a container
        "no /dev/nvidia[0-9]* device nodes: this machine has no NVIDIA GPU, or its driver is not "
        "loaded"
    )
    cuda = by_id(doctor.container_checks(probe))["cuda"]
    assert cuda.status == "fail"
    assert "nvidia-smi" in cuda.fix and "--gpus" not in cuda.fix
    assert "container" not in cuda.detail
    probe["in_container"] = True
    cuda = by_id(doctor.container_checks(probe))["cuda"]
    assert cuda.status == "fail" and "--gpus all" in cuda.fix


def test_a_probe_that_does_not_say_where_it_ran_is_placed_by_how_the_doctor_ran_it():
    # Recordings older than the probe's `in_container` field.
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe.pop("in_container", None)
    on_host = by_id(doctor.container_checks(probe, host_probe=True))["cuda"]
    in_image = by_id(doctor.container_checks(probe))["cuda"]
    assert "--gpus" not in on_host.fix and "--gpus all" in in_image.fix


@pytest.mark.parametrize("reason", ["no_driver_library", "bad_visible_devices", "init_error"])
def test_every_cuda_reason_has_a_host_fix_without_container_words(reason):
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe["cuda"]["reason"] = reason
    probe["cuda"]["detail"] = "CUDA unknown error"
    probe["in_container"] = False
    on_host = by_id(doctor.container_checks(probe))["cuda"]
    probe["in_container"] = True
    inside = by_id(doctor.container_checks(probe))["cuda"]
    assert on_host.status == inside.status == "fail"
    assert "container" not in on_host.fix and "--gpus" not in on_host.fix
    assert "container" in inside.fix.lower()


@pytest.mark.parametrize("contained", [False, True])
def test_a_host_probe_that_differs_from_the_entry_does_not_say_rebuild_the_image(contained):
    # `--host` may run inside a container (a dev container, a CI job): still not the image.
    probe = json.loads((PROBES / "cpu-host-torch2.13.json").read_text())
    probe["in_container"] = contained
    torch = by_id(doctor.container_checks(probe, TORCH214, host_probe=True))["torch"]
    assert torch.status == "fail"
    assert "without --host" in torch.fix and "rebuild" not in torch.fix
    assert by_id(doctor.container_checks(probe, TORCH214))["torch"].fix == (
        "rebuild the image: envkit build " + TORCH214.name
    )


def test_a_gpu_fallen_off_the_bus_keeps_the_driver_version_and_the_answering_gpus():
    # nvidia-smi lists GPU 0 and then fails on the next one; the driver is there and works.
    broken = replace(
        H100_HOST,
        nvidia_smi_error="Unable to determine the device handle for GPU1: 0000:3B:00.0: "
        "Unknown Error",
    )
    engine = FakeEngine(
        info=gpu_docker_info(), outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]
    )
    report = doctor.run_doctor(TORCH14, engine=engine, host=broken, all_entries=ALL)
    checks = by_id(report.checks)
    assert checks["driver"].status == "fail"
    assert "then failed on another" in checks["driver"].detail
    # The static checks still know driver 550 and the H100: torch 1.4 cannot run on sm_90.
    assert checks["driver-for-cuda"].status == "pass"
    assert "550.54.15" in checks["driver-for-cuda"].detail
    assert checks["arch"].status == "fail"
    assert report.suggestions and all(
        next(e for e in ALL if e.name == name).cuda for name in report.suggestions
    )
    # The GPU that answered is requested by index, not --gpus all.
    assert [c["gpus"] for c in engine.calls] == ["0"]
    assert "--gpus '\"device=0\"'" in checks["gpu-attach"].detail


@pytest.mark.parametrize(
    "name, caller_uid, status",
    [
        ("cuda13-container-torch2.14-nogpu.json", 1000, "pass"),  # envkit's user is you
        ("cuda13-container-torch2.14-nogpu.json", 0, "pass"),  # root may change any file
        ("cuda13-container-torch2.14-nogpu.json", 1001, "warn"),
        ("cpu-container-torch2.13.json", 1000, "warn"),  # an image that runs as root
        ("cpu-host-torch2.13.json", None, "pass"),  # --host: the probe ran as you
    ],
)
def test_user_check_says_whose_files_a_bind_mount_gets(name, caller_uid, status):
    user = by_id(doctor.container_checks(recorded(name), caller_uid=caller_uid))["user"]
    assert user.status == status, user
    if status == "warn":
        owner = "root" if "cpu-container" in name else "uid 1000"
        assert f"will belong to {owner}, not to you" in user.detail
        assert "--user $(id -u):$(id -g)" in user.fix


def test_orchestrator_compares_the_image_user_with_the_caller(monkeypatch):
    monkeypatch.setattr(doctor.runner, "caller_uid", lambda: 1234)
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=CPU_HOST, all_entries=ALL)
    user = by_id(report.checks)["user"]
    assert user.status == "warn" and "you are uid 1234" in user.detail


@pytest.mark.parametrize(
    "name, status",
    [
        ("cpu-container-torch2.13.json", "pass"),  # container root is you under rootless Docker
        ("cuda13-container-torch2.14-nogpu.json", "warn"),  # uid 1000 maps to a subordinate uid
    ],
)
def test_user_check_under_rootless_docker(name, status):
    user = by_id(doctor.container_checks(recorded(name), caller_uid=1000, rootless=True))["user"]
    assert user.status == status, user
    if status == "warn":
        assert "subordinate" in user.detail and "--user 0:0" in user.fix


def test_orchestrator_reads_rootless_and_docker_desktop_from_the_engine(monkeypatch):
    monkeypatch.setattr(doctor.runner, "caller_uid", lambda: 1234)
    rootless = gpu_docker_info(SecurityOptions=["name=seccomp,profile=builtin", "name=rootless"])
    desktop = gpu_docker_info(OperatingSystem="Docker Desktop", KernelVersion="6.10.14-linuxkit")
    users = {}
    for label, info in (("rootless", rootless), ("desktop", desktop)):
        engine = FakeEngine(info=info, outputs=[probe_result("cpu-container-torch2.13.json")])
        report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
        users[label] = by_id(report.checks)["user"]
    assert users["rootless"].status == "pass" and "rootless" in users["rootless"].detail
    # Docker Desktop's file sharing hands bind-mounted files to the host user: no comparison.
    assert users["desktop"].status == "pass"
