"""Doctor host checks: engine, GPU runtime, driver, GPUs, /dev/shm, fed recorded inputs.

Where the inputs were recorded, and which are DOCUMENTED EXAMPLES (the GPU side): doctor_cases.py.
"""

from __future__ import annotations

from doctor_cases import DOCKER_INFO, GIB8, by_id, gpu_docker_info
from gpu_inputs import A100, A100_MIG, H100, PROC_550, error_text, fake_nvidia_smi

from envkit import doctor
from envkit.errors import EngineUnavailable, EnvkitError


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


def test_run_nvidia_smi_keeps_the_gpus_listed_around_one_that_failed(tmp_path, monkeypatch):
    # A GPU off the bus: nvidia-smi lists the others, says why on stdout or stderr, exits 15.
    script = (
        "echo '0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled'\n"
        "echo 'Unable to determine the device handle for GPU1: 0000:1B:00.0: Unknown Error'\n"
        "echo '2, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled'\n"
        "echo 'Unable to determine the device handle for GPU3: 0000:1C:00.0: GPU is lost' >&2\n"
        "exit 15\n"
    )
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, script))
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
