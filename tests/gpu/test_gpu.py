"""On a machine with an NVIDIA GPU: the probe, doctor and the benchmark on the real device.

CI has no GPU: every test here is marked `gpu` and skips with the reason there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gpu


def test_doctor_host_passes_every_gpu_check():
    out = subprocess.run(
        [sys.executable, "-m", "envkit", "doctor", "--host", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    report = json.loads(out.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["cuda"]["status"] == "pass", checks["cuda"]
    kernels = [c for c in report["checks"] if c["id"].endswith("-kernels")]
    assert kernels and all(c["status"] == "pass" for c in kernels), kernels
    gpus = [c for c in report["checks"] if c["id"].startswith("gpu") and c["id"][3:].isdigit()]
    assert gpus and all(c["status"] == "pass" for c in gpus), gpus
    assert out.returncode == 0 and report["ok"] is True, out.stdout


def test_static_check_flags_torch_1_13_on_hopper():
    out = subprocess.run(
        [sys.executable, "-m", "envkit", "doctor", "torch1.13-cuda11", "--static", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    report = json.loads(out.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    caps = [
        c["detail"] for c in report["checks"] if c["id"].startswith("gpu") and c["id"][3:].isdigit()
    ]
    if not any("sm_90" in d or "sm_10" in d or "sm_12" in d for d in caps):
        pytest.skip("this GPU is older than Hopper; torch 1.13 may cover it")
    assert checks["arch"]["status"] == "fail"
    assert "no kernel image is available" in checks["arch"]["detail"]
    assert report["suggestions"]


def test_quick_bench_trains_on_the_gpu(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "envkit" / "inside" / "bench.py"),
            "--quick",
            "--device",
            "cuda",
            "--out",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert doc["status"] == "ok" and doc["env"]["gpu"]
    assert doc["convergence"]["accuracy"] >= 0.95
    step = doc["convergence"]["gpu_cpu_step"]
    assert step is not None and step["passed"] is True, step
