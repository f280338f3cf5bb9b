"""One answer to "can this engine attach GPUs?": doctor's gpu-runtime row and run's --gpus auto."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from envkit import doctor, engine, run
from envkit.gpu.host import find_toolkit, gpu_runtime, runtime_of_engine

INFO = {
    "ServerVersion": "28.2.2",
    "OperatingSystem": "Debian GNU/Linux 12",
    "Runtimes": {"runc": {}},
}
H100_CSV = "0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15, Disabled\n"


def _on_path(monkeypatch, tmp_path: Path, *names: str) -> None:
    """PATH holding only dummy executables of these names."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        program = folder / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))


def _doctor_row(info: dict, tmp_path: Path) -> str:
    checks = doctor.host_checks(info, H100_CSV, None, 8 * 1024**3, [], toolkit=find_toolkit())
    return next(c for c in checks if c.id == "gpu-runtime").status


def _run_requests(monkeypatch, info: dict, tmp_path: Path) -> str | None:
    no_cdi = tmp_path / "cdi"
    no_cdi.mkdir(exist_ok=True)
    monkeypatch.setattr(engine, "engine_info", lambda: {**info, "CDISpecDirs": [str(no_cdi)]})
    return run.resolve_gpus("auto")[0]


def test_the_hook_alone_on_path_lets_both_attach_gpus(monkeypatch, tmp_path):
    # dockerd's built-in --gpus driver is NVIDIA's OCI hook found on PATH: no runtime needs
    # registering. doctor passed this host while run started containers without GPUs.
    _on_path(monkeypatch, tmp_path, "nvidia-container-runtime-hook")
    assert _doctor_row(INFO, tmp_path) == "pass"
    assert _run_requests(monkeypatch, INFO, tmp_path) == "all"


def test_nvidia_ctk_alone_lets_neither_attach_gpus(monkeypatch, tmp_path):
    # The CLI of the toolkit without its hook: --gpus fails ("could not select device driver").
    _on_path(monkeypatch, tmp_path, "nvidia-ctk")
    assert _doctor_row(INFO, tmp_path) == "fail"
    assert _run_requests(monkeypatch, INFO, tmp_path) is None


@pytest.mark.parametrize(
    "info, cdi, toolkit, attach",
    [
        ({"Runtimes": {"runc": {}, "nvidia": {}}}, [], [], True),
        ({"Runtimes": {"runc": {}}}, ["/etc/cdi/nvidia.yaml"], [], True),
        ({"Runtimes": {"runc": {}}}, ["/etc/cdi/amd.yaml"], [], False),
        ({"Runtimes": {"runc": {}}}, [], ["/usr/bin/nvidia-container-toolkit"], True),
        ({"Runtimes": {"runc": {}}}, [], ["/usr/bin/nvidia-container-runtime"], False),
        # Docker Desktop's VM has no GPU whatever the host has installed.
        (
            {
                "Runtimes": {"nvidia": {}},
                "OperatingSystem": "Docker Desktop",
                "KernelVersion": "6.6-linuxkit",
            },
            [],
            [],
            False,
        ),
    ],
)
def test_gpu_runtime_decides_for_doctor_and_run_alike(info, cdi, toolkit, attach):
    runtime = gpu_runtime(info, cdi, toolkit)
    assert runtime.can_attach is attach
    checks = doctor.host_checks(info, H100_CSV, None, 8 * 1024**3, cdi, toolkit=toolkit)
    row = next(c for c in checks if c.id == "gpu-runtime")
    assert (row.status in ("pass", "warn")) is attach, row


def test_the_engine_reads_the_cdi_folders_it_names(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no toolkit
    folder = tmp_path / "cdi"
    folder.mkdir()
    info = {"Runtimes": {"runc": {}}, "CDISpecDirs": [str(folder)]}
    assert not runtime_of_engine(info).can_attach
    (folder / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    assert runtime_of_engine(info).can_attach
    assert engine.gpu_runtime_available(info)
    assert os.path.basename(runtime_of_engine(info).ways[0].split()[-1]) == "nvidia.yaml"
