"""scripts/gpu-evidence.sh runs every step and records it, even on a machine without a GPU.

The script is what a GPU host runs to produce docs/gpu/, so it must not rot between those runs.
Here (no GPU) every GPU step has to fail the documented way and the run still has to finish; on
a host with a GPU the script is run for real instead, and this test stands aside.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envkit.inside import bench

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-evidence.sh"
STEPS = [
    "nvidia-smi.txt",
    "versions.txt",
    "doctor-host.json",
    "doctor-host.txt",
    "doctor-static-torch1.13.txt",
    "doctor-static-torch1.4.txt",
    "doctor-static-torch2.14.txt",
    "probe-host.json",
    "bench-default.json",
    "bench-quick.json",
    "bench-host-cli.json",
    "bench-fp16.json",
    "bench-oom.json",
    "reference-1024.json",
    "plots.txt",
    "record.txt",
    "pytest-gpu.txt",
]


def recorded(commands: str) -> dict[str, str]:
    """{step name: exit code as text, or 'skipped'} from commands.txt."""
    found = {}
    ran = re.findall(r"^\$ .*\n  -> exit (\d+), [0-9.]+ s", commands, flags=re.M)
    for name in STEPS:
        if re.search(rf"^# skipped {re.escape(name)}: ", commands, flags=re.M):
            found[name] = "skipped"
    # Steps run in the order of STEPS; the skipped ones leave no "$" line.
    executed = [n for n in STEPS if n not in found]
    assert len(ran) == len(executed), commands
    found.update(zip(executed, ran))
    return found


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None,
    reason="a GPU host runs scripts/gpu-evidence.sh for real",
)
def test_every_step_runs_and_gpu_steps_fail_the_documented_way(tmp_path):
    out = tmp_path / "gpu"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(f"(commands and exit codes in {out}/commands.txt)")

    codes = recorded((out / "commands.txt").read_text())
    assert set(codes) == set(STEPS)
    assert codes["nvidia-smi.txt"] == "127"
    assert codes["versions.txt"] == "0"
    assert codes["probe-host.json"] == "0"
    # The record is written and fails: no GPU here, so the bench reports no_gpu.
    assert codes["record.txt"] == "1", (out / "record.txt.err").read_text()
    written = list((out / "records").glob("*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["status"] == "fail"
    # No GPU: a CUDA entry's static check fails; the host check fails only for a CUDA build of
    # torch (a CPU-only build on a host without a GPU is a coherent setup); every --device cuda
    # run says no_gpu instead of timing the CPU.
    assert codes["doctor-static-torch1.4.txt"] == "1"
    cuda_build = torch.version.cuda is not None
    for name in ("doctor-host.json", "doctor-host.txt"):
        assert codes[name] == ("1" if cuda_build else "0"), name
    for name in ("bench-default.json", "bench-quick.json", "bench-fp16.json", "bench-oom.json"):
        assert codes[name] == str(bench.EXIT_NO_GPU), name
    assert codes["reference-1024.json"] == str(bench.EXIT_NO_GPU)
    # The CLI's own host run picks the CPU here and passes the accuracy gate.
    assert codes["bench-host-cli.json"] == "0"
    assert json.loads((out / "bench-host-cli.json").read_text())["status"] == "ok"
    assert codes["pytest-gpu.txt"] == "0"

    doctor = json.loads((out / "doctor-host.json").read_text())
    (cuda,) = [c for c in doctor["checks"] if c["id"] == "cuda"]
    if cuda_build:
        assert doctor["ok"] is False and cuda["status"] == "fail" and cuda["fix"]
    else:
        assert doctor["ok"] is True and cuda["status"] == "skip"
        assert "CPU-only build" in cuda["detail"]

    report = json.loads((out / "bench-gpu.json").read_text())
    assert report["status"] == "no_gpu" and report["failed_checks"] == ["device.cuda"]
    assert report["throughput"] == []
    assert json.loads((out / "probe-host.json").read_text())["cuda"]["available"] is False
    assert "skipped" in (out / "pytest-gpu.txt").read_text()
