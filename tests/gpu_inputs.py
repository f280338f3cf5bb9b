"""Inputs shared by the envkit.gpu tests (tests/unit/gpu) and the doctor tests (tests/unit/doctor).

Recorded on this machine (see docs/doctor.md for the commands): tests/data/probe/*.json (probe
outputs on the host and in CPU and CUDA containers without GPUs, `docker info`) and
tests/data/errors/*.txt (docker's own error texts). No GPU machine was available for
recording, so GPU-side inputs are DOCUMENTED EXAMPLES, marked as such where they are built:
nvidia-smi CSV rows follow NVIDIA's documented `--format=csv,noheader,nounits` layout, and the
probe reports of GPU runs are recorded reports with the GPU fields filled in the probe's format.

Imported by name (`from gpu_inputs import ...`): tests/ is on sys.path because pytest prepends
the folder of tests/conftest.py, as it does for the `from conftest import ...` of other tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from envkit.gpu.fit import alternatives
from envkit.gpu.host import GpuHost, HostGpu, parse_nvidia_smi

DATA = Path(__file__).resolve().parent / "data"
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


def gpus_of(csv_text: str) -> list[HostGpu]:
    return parse_nvidia_smi(csv_text)


def fake_nvidia_smi(tmp_path: Path, script: str) -> str:
    """A PATH whose first nvidia-smi is this shell script."""
    exe = tmp_path / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
