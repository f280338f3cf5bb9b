"""envkit.gpu.known_errors: the error texts the doctor (and every command) explains, with a fix.

The texts are docker's own, recorded on this machine in tests/data/errors/*.txt (see
docs/doctor.md for the commands), and DOCUMENTED EXAMPLES of failures that a machine without a
GPU cannot produce, marked as such in the table below.
"""

from __future__ import annotations

import pytest
from gpu_inputs import error_text

from envkit.gpu.known_errors import explain_error


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
    explained = explain_error(text)
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
    details = [explain_error(t)[0] for t in texts]
    assert len(set(details)) == len(texts)


def test_unknown_text_is_not_explained():
    assert explain_error("segmentation fault (core dumped)") is None
    # Other toolkit requirements are not about the driver's CUDA version.
    assert explain_error("requirement error: unsatisfied condition: brand = tesla") is None
    assert explain_error("") is None


def test_no_cuda_gpus_mentions_mig_instances():
    detail, fix = explain_error("RuntimeError: No CUDA GPUs are available")
    assert "MIG" in detail and "nvidia-smi mig" in fix
