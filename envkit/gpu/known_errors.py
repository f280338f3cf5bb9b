"""Error texts of docker, the NVIDIA container runtime, the driver and torch, and what each means.

`explain_error(text)` gives (detail, fix) for a known text; doctor's checks and the engine's own
messages both read this one table.
"""

from __future__ import annotations

import re

from .host import TOOLKIT_FIX

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
        # The toolkit checks an image's NVIDIA_REQUIRE_CUDA (set by nvidia/cuda bases and by
        # every envkit image of a CUDA entry) against the driver before the container starts;
        # the doctor adds the entries that run on this driver to the fix.
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


def with_explanation(explanation: str, text: str) -> str:
    """'explanation: text', unless the text already says it."""
    return text if explanation.lower() in text.lower() else f"{explanation}: {text}"


# Lines torch appends under every CUDA error message: true, but never the cause.
_BOILERPLATE = re.compile(
    r"CUDA kernel errors might be asynchronously reported|consider passing CUDA_LAUNCH_BLOCKING"
    r"|Compile with `?TORCH_USE_CUDA_DSA|Device-side assertion tracking was not enabled"
    r"|^Search for `cuda\w+' in https://docs\.nvidia\.com"
)


def last_line(text: str) -> str:
    """The last non-empty line that is not torch's CUDA boilerplate: where a Python error's
    message sits under its traceback."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    telling = [line for line in lines if not _BOILERPLATE.search(line)]
    return (telling or lines or [""])[-1]
