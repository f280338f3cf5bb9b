"""Helpers of the doctor tests: the recorded `docker info`, GPU probe reports, a fake engine.

`docker info` and the probe reports are recorded on this machine (tests/data/probe; see
docs/doctor.md for the commands); the GPU fields of `gpu_probe` are DOCUMENTED EXAMPLES (no GPU
machine was available for recording). The inputs shared with the envkit.gpu tests are in
tests/gpu_inputs.py. Imported by name (`from doctor_cases import ...`): pytest prepends this
folder to sys.path for the tests in it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from gpu_inputs import H100, PROBES, PROC_550, recorded

from envkit import doctor
from envkit.doctor import Check, HostFacts


def by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


DOCKER_INFO = recorded("docker-info-bookworm.json")
GIB8 = 8 * 1024**3


def gpu_docker_info(**extra) -> dict:
    """The recorded docker info with the nvidia runtime registered, as the toolkit does."""
    info = copy.deepcopy(DOCKER_INFO)
    info["Runtimes"]["nvidia"] = {"path": "nvidia-container-runtime"}
    info.update(extra)
    return info


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
